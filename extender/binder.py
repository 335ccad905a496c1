"""Creating the pod's Binding, as kube-scheduler's DefaultBinder would.

When an extender declares ``bindVerb``, kube-scheduler delegates the
binding of the pods it is interested in to it and does not bind them
itself; so this must do exactly what the default binder does: POST a
``Binding`` to the pod's ``binding`` subresource, with the pod's uid as a
precondition so a pod deleted and recreated under the same name is never
bound by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from kube.client import ApiClient, ApiError


#: A lookup is on a scheduling cycle's path (the scheduler's httpTimeout is 5 s).
LOOKUP_TIMEOUT = 2.0


class BindError(Exception):
    """The Binding was refused or could not be sent; the message goes back to the scheduler."""


class Binder(Protocol):
    """What bind needs: something that creates a pod's Binding."""

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """Bind the pod to ``node``; raise :class:`BindError` with the reason on failure."""
        ...


def binding_body(namespace: str, name: str, uid: str, node: str) -> dict[str, object]:
    """The ``Binding`` object, with the pod's uid as a precondition when known."""
    metadata: dict[str, str] = {"name": name, "namespace": namespace}
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": metadata,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


class ApiBinder:
    """Binds through the apiserver's ``pods/binding`` subresource."""

    def __init__(self, client: ApiClient, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        """POST the Binding; a refusal or a transport error is a :class:`BindError`."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/binding"
        try:
            await self.client.request("POST", path, binding_body(namespace, name, uid, node), timeout=self.timeout)
        except ApiError as exc:
            raise BindError(f"binding {namespace}/{name} to {node}: {exc}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BindError(f"binding {namespace}/{name} to {node}: {type(exc).__name__}: {exc}") from exc

    async def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The live pod, ``None`` when it does not exist (the bind checks' lookup, :mod:`extender.guard`)."""
        try:
            return await self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}",
                                             timeout=LOOKUP_TIMEOUT)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def node_exists(self, name: str) -> bool:
        """Whether the Node exists (a bind onto a node the watch has not shown yet)."""
        try:
            await self.client.request("GET", f"/api/v1/nodes/{name}", timeout=LOOKUP_TIMEOUT)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True
