"""Where the apiserver is and how to prove who we are to it.

The official ``kubernetes`` package already knows every kubeconfig corner
(inline data, exec plugins, OIDC, in-cluster service-account tokens), so it
is used for exactly that and nothing else: its loaders fill a throw-away
``Configuration``, and :class:`ClusterConfig` keeps the few facts an
``aiohttp`` session needs. The package is imported lazily because importing
it costs far more than everything else here.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Where the kubelet mounts a pod's service-account credentials.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

DEFAULT_USER_AGENT = "meshfit"


class ConfigError(Exception):
    """No usable cluster configuration: bad kubeconfig, or not running in a cluster."""


TokenSource = Callable[[], "str | None"]


@dataclass(frozen=True)
class ClusterConfig:
    """One apiserver endpoint and the credentials for it, independent of any HTTP library.

    ``token_source`` returns the full ``Authorization`` header value (``Bearer
    ...``) and is called for every request: service-account tokens are
    rotated by the kubelet and exec-plugin tokens expire, and the loaders'
    refresh hooks are cheap when nothing has expired (an expiry comparison,
    or re-reading one small file once a minute).
    """

    server: str
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    verify_tls: bool = True
    #: Overrides the name checked against the server certificate (kubeconfig ``tls-server-name``).
    tls_server_name: str | None = None
    token_source: TokenSource | None = field(default=None, compare=False, repr=False)
    user_agent: str = DEFAULT_USER_AGENT

    @property
    def is_tls(self) -> bool:
        """Whether the server is reached over HTTPS."""
        return self.server.startswith("https://")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A fresh client context for this server, or ``None`` for plain ``http://``."""
        if not self.is_tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert_file:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def headers(self) -> dict[str, str]:
        """Per-request headers: the current bearer token, when the user has one."""
        headers = {"User-Agent": self.user_agent}
        if self.token_source is not None:
            token = self.token_source()
            if token:
                scheme, _, credential = token.partition(" ")
                if not credential:
                    scheme, credential = "Bearer", token
                elif scheme.lower() == "bearer":
                    scheme = "Bearer"  # the in-cluster loader writes "bearer"
                headers["Authorization"] = f"{scheme} {credential.strip()}"
        return headers

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, *, context: str | None = None) -> ClusterConfig:
        """Load ``path`` (default: ``$KUBECONFIG`` or ``~/.kube/config``), current or named context."""
        from kubernetes import client, config  # deferred: see module docstring

        cfg = client.Configuration()
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.path.expanduser(path) if path else None,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
        except Exception as exc:  # the loader raises YAML, key, type and OS errors alike
            where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            detail = str(exc).replace("\n", " ") or type(exc).__name__
            raise ConfigError(f"cannot load kubeconfig {where}: {detail}") from exc
        return cls._from_configuration(cfg)

    @classmethod
    def in_cluster(
        cls,
        *,
        token_file: str = f"{SERVICE_ACCOUNT_DIR}/token",
        ca_file: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        environ: Mapping[str, str] | None = None,
    ) -> ClusterConfig:
        """The pod's service account; the paths and environment are parameters for tests."""
        from kubernetes import client, config
        from kubernetes.config.incluster_config import InClusterConfigLoader

        cfg = client.Configuration()
        try:
            InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=token_file,
                cert_filename=ca_file,
                try_refresh_token=True,
                environ=dict(os.environ if environ is None else environ),
            ).load_and_set(cfg)
        except (config.ConfigException, OSError) as exc:
            raise ConfigError(f"not running in a cluster: {exc}") from exc
        return cls._from_configuration(cfg)

    @classmethod
    def _from_configuration(cls, cfg: Any) -> ClusterConfig:
        """Keep what a request needs from a filled ``kubernetes.client.Configuration``."""

        def token() -> str | None:
            value = cfg.get_api_key_with_prefix("BearerToken")
            return str(value) if value else None

        has_token = bool(cfg.api_key.get("BearerToken")) or cfg.refresh_api_key_hook is not None
        return cls(
            server=str(cfg.host).rstrip("/"),
            ca_file=cfg.ssl_ca_cert or None,
            client_cert_file=cfg.cert_file or None,
            client_key_file=cfg.key_file or None,
            verify_tls=bool(cfg.verify_ssl),
            tls_server_name=getattr(cfg, "tls_server_name", None) or None,
            token_source=token if has_token else None,
        )


def load_config(kubeconfig: str | None = None, *, context: str | None = None) -> ClusterConfig:
    """kubectl's precedence: ``--kubeconfig``, else ``$KUBECONFIG``, else in-cluster, else ``~/.kube/config``.

    ``$KUBECONFIG`` and a named ``context`` are a person's explicit choice and
    win over the service account. In-cluster wins over ``~/.kube/config`` when
    both exist because a pod that happens to carry a kubeconfig file should
    still act as its own service account unless told otherwise.
    """
    if kubeconfig:
        return ClusterConfig.from_kubeconfig(kubeconfig, context=context)
    if os.environ.get("KUBECONFIG") or context:
        return ClusterConfig.from_kubeconfig(None, context=context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(f"{SERVICE_ACCOUNT_DIR}/token"):
        return ClusterConfig.in_cluster()
    return ClusterConfig.from_kubeconfig(None, context=context)
