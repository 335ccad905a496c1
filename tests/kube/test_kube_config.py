"""ClusterConfig from kubeconfig files and in-cluster credentials, used over real TLS on loopback."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml
from recorded_apiserver import RecordedApiServer, start

from certs.generate import generate
from certs.reload import CertReloader
from kube.client import ApiClient
from kube.config import ClusterConfig, ConfigError, load_config


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, cluster: dict, user: dict) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "loop", "cluster": cluster}],
                "users": [{"name": "me", "user": user}],
                "contexts": [{"name": "loop", "context": {"cluster": "loop", "user": "me"}}],
                "current-context": "loop",
            }
        )
    )
    return path


@pytest.fixture
async def tls_api(tmp_path: Path):
    """The recorded server behind HTTPS, with a certificate valid for 127.0.0.1 and one DNS name."""
    pair = generate(tmp_path / "server", service="apiserver", namespace="default", ips=["127.0.0.1"])
    server = RecordedApiServer()
    runner = await start(server, CertReloader(pair.directory).context)
    try:
        yield server, pair
    finally:
        server.closing.set()
        await runner.cleanup()


async def test_kubeconfig_with_inline_ca_and_token(tls_api, tmp_path: Path) -> None:
    api, pair = tls_api
    api.lists.append(api.json(b'{"kind":"NamespaceList","apiVersion":"v1","metadata":{},"items":[]}'))
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": api.url, "certificate-authority-data": pair.ca_bundle},
        {"token": "s3cr3t"},
    )
    cfg = ClusterConfig.from_kubeconfig(str(path))
    assert cfg.server == api.url and cfg.verify_tls and cfg.ca_file
    assert cfg.headers()["Authorization"] == "Bearer s3cr3t"
    async with ApiClient(cfg) as client:
        assert (await client.get_json("/api/v1/namespaces"))["kind"] == "NamespaceList"
    assert api.requests[0][2]["Authorization"] == "Bearer s3cr3t"
    assert load_config(str(path)) == cfg


async def test_wrong_ca_is_refused(tls_api, tmp_path: Path) -> None:
    api, _pair = tls_api
    other = generate(tmp_path / "other", service="apiserver", namespace="default", ips=["127.0.0.1"])
    path = write_kubeconfig(
        tmp_path / "kubeconfig", {"server": api.url, "certificate-authority-data": other.ca_bundle}, {}
    )
    cfg = ClusterConfig.from_kubeconfig(str(path))
    assert cfg.token_source is None and "Authorization" not in cfg.headers()
    async with ApiClient(cfg) as client:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await client.get_json("/version")
    assert api.requests == []


async def test_tls_server_name_overrides_the_checked_name(tmp_path: Path) -> None:
    # A certificate without the IP: only the Service's DNS names.
    pair = generate(tmp_path / "server", service="kubernetes", namespace="default")
    server = RecordedApiServer()
    runner = await start(server, CertReloader(pair.directory).context)
    try:
        server.lists.append(server.json(b'{"gitVersion":"v1.36.3"}'))
        cluster = {"server": server.url, "certificate-authority-data": pair.ca_bundle}
        plain = ClusterConfig.from_kubeconfig(str(write_kubeconfig(tmp_path / "a", cluster, {})))
        async with ApiClient(plain) as client:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await client.get_json("/version")
        named = ClusterConfig.from_kubeconfig(
            str(write_kubeconfig(tmp_path / "b", {**cluster, "tls-server-name": "kubernetes.default.svc"}, {}))
        )
        assert named.tls_server_name == "kubernetes.default.svc"
        async with ApiClient(named) as client:
            assert await client.get_json("/version") == {"gitVersion": "v1.36.3"}
    finally:
        server.closing.set()
        await runner.cleanup()


def test_client_certificate_and_insecure_flags(tmp_path: Path) -> None:
    pair = generate(tmp_path / "client", service="admin", namespace="default")
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True},
        {"client-certificate-data": b64(pair.cert_path), "client-key-data": b64(pair.key_path)},
    )
    cfg = ClusterConfig.from_kubeconfig(str(path))
    assert cfg.client_cert_file and cfg.client_key_file and not cfg.verify_tls
    context = cfg.ssl_context()
    assert context is not None and not context.check_hostname


async def test_exec_plugin_token(tls_api, tmp_path: Path) -> None:
    api, pair = tls_api
    api.lists.append(api.json(b"{}"))
    plugin = tmp_path / "plugin.py"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-exec", "expirationTimestamp": "2099-01-01T00:00:00Z"},
    }
    plugin.write_text(f"print({json.dumps(json.dumps(credential))})\n")
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        {"server": api.url, "certificate-authority-data": pair.ca_bundle},
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": sys.executable,
                "args": [str(plugin)],
                "interactiveMode": "Never",
            }
        },
    )
    cfg = ClusterConfig.from_kubeconfig(str(path))
    async with ApiClient(cfg) as client:
        await client.get_json("/version")
    assert api.requests[0][2]["Authorization"] == "Bearer from-exec"


async def test_in_cluster_service_account(tls_api, tmp_path: Path) -> None:
    api, pair = tls_api
    api.lists.append(api.json(b"{}"))
    token = tmp_path / "token"
    token.write_text("sa-token")
    port = api.url.rsplit(":", 1)[1]
    cfg = ClusterConfig.in_cluster(
        token_file=str(token),
        ca_file=str(pair.ca_cert_path),
        environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
    )
    assert cfg.server == api.url
    assert cfg.headers()["Authorization"] == "Bearer sa-token"
    async with ApiClient(cfg) as client:
        await client.get_json("/version")
    assert api.requests[0][2]["Authorization"] == "Bearer sa-token"


def test_configuration_errors_are_one_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not running in a cluster"):
        ClusterConfig.in_cluster(token_file=str(tmp_path / "none"), environ={})
    with pytest.raises(ConfigError, match="cannot load kubeconfig"):
        ClusterConfig.from_kubeconfig(str(tmp_path / "missing"))
    (tmp_path / "broken").write_text("clusters: [}")
    with pytest.raises(ConfigError):
        load_config(str(tmp_path / "broken"))


def test_plain_http_has_no_ssl_context() -> None:
    cfg = ClusterConfig(server="http://127.0.0.1:8080")
    assert cfg.ssl_context() is None
    assert cfg.headers() == {"User-Agent": "meshfit"}
