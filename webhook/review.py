"""AdmissionReview documents in and out, as plain dicts and bytes.

The kube-apiserver sends ``admission.k8s.io/v1`` (older configurations
``v1beta1``) and expects the answer in the version it asked in. Both versions
share the request and response shapes the webhook uses, so one reader and one
writer serve both; only ``apiVersion`` is echoed.

The reader checks exactly what the webhook relies on and nothing more: a
schema-invalid review is the caller's fault and becomes a 400 with a message
naming the field, never a ``KeyError`` deep in a handler. The writer builds
the response with orjson in one pass because it runs for every pod CREATE in
the cluster.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"
API_VERSIONS: frozenset[str] = frozenset((V1, V1BETA1))


class ReviewError(ValueError):
    """The body is not an AdmissionReview the webhook can answer (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Review:
    """What the webhook needs from one ``AdmissionReview.request``."""

    api_version: str
    uid: str
    #: ``request.kind``: the object's group/version/kind, e.g. ``("", "v1", "Pod")``.
    group: str
    version: str
    kind: str
    #: ``request.resource.resource`` (``pods``) and ``request.subResource`` (``""``, ``status``...).
    resource: str
    sub_resource: str
    operation: str
    namespace: str
    name: str
    dry_run: bool
    #: ``request.object``: the object as submitted (``None`` for DELETE).
    object: dict[str, Any] | None

    @property
    def is_pod_create(self) -> bool:
        """Only a Pod CREATE on the pod itself (no subresource) is ever mutated."""
        return (
            self.operation == "CREATE"
            and self.kind == "Pod"
            and self.group == ""
            and not self.sub_resource
            and (self.resource in ("", "pods"))
        )


def _string(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{path}.{key} is required")
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{path}.{key} must be a string, got {type(value).__name__}")
    if required and not value:
        raise ReviewError(f"{path}.{key} must not be empty")
    return value


def _mapping(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{path}.{key} is required")
        return None
    if not isinstance(value, dict):
        raise ReviewError(f"{path}.{key} must be an object, got {type(value).__name__}")
    return value


def _shown(value: Any) -> str:
    """A value from the body as a message shows it: strings quoted, anything else by its type, never long."""
    if isinstance(value, str):
        return repr(value[:80])
    if value is None:
        return "nothing"
    return f"a JSON {type(value).__name__}"


def parse_review(body: bytes) -> Review:
    """Decode and check one AdmissionReview; raises :class:`ReviewError` with a message."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ReviewError(f"body must be a JSON object, got {type(document).__name__}")
    # Any JSON value may stand here: a list or an object is unhashable, so test the type
    # before the set (a TypeError would be a 500), and keep the message short.
    api_version = document.get("apiVersion")
    if not isinstance(api_version, str) or api_version not in API_VERSIONS:
        raise ReviewError(f"apiVersion must be {V1} or {V1BETA1}, got {_shown(api_version)}")
    kind = document.get("kind")
    if kind != "AdmissionReview":
        raise ReviewError(f"kind must be AdmissionReview, got {_shown(kind)}")
    request = _mapping(document, "request", "", required=True)
    assert request is not None
    path = "request"
    uid = _string(request, "uid", path, required=True)
    request_kind = _mapping(request, "kind", path, required=True)
    assert request_kind is not None
    resource = _mapping(request, "resource", path) or {}
    operation = _string(request, "operation", path, required=True)
    dry_run = request.get("dryRun")
    if dry_run is None:  # absent or null: not a dry run
        dry_run = False
    if not isinstance(dry_run, bool):
        raise ReviewError(f"request.dryRun must be a boolean, got {type(dry_run).__name__}")
    review = Review(
        api_version=api_version,
        uid=uid,
        group=_string(request_kind, "group", "request.kind"),
        version=_string(request_kind, "version", "request.kind"),
        kind=_string(request_kind, "kind", "request.kind", required=True),
        resource=_string(resource, "resource", "request.resource"),
        sub_resource=_string(request, "subResource", path),
        operation=operation,
        namespace=_string(request, "namespace", path),
        name=_string(request, "name", path),
        dry_run=dry_run,
        object=_mapping(request, "object", path),
    )
    if review.is_pod_create:
        if review.object is None:
            raise ReviewError("request.object is required for a Pod CREATE")
        metadata = review.object.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ReviewError("request.object.metadata must be an object")
        for key in ("labels", "annotations"):  # the engine reads both as maps, as the apiserver sends them
            value = (metadata or {}).get(key)
            if value is not None and not isinstance(value, dict):
                raise ReviewError(f"request.object.metadata.{key} must be an object, got {type(value).__name__}")
        spec = review.object.get("spec")
        if not isinstance(spec, dict):
            raise ReviewError("request.object.spec must be an object")
    return review


def _response(
    review: Review,
    *,
    allowed: bool,
    patch: Sequence[Mapping[str, Any]] | None = None,
    encoded_patch: str | None = None,
    warnings: Sequence[str] = (),
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": review.uid, "allowed": allowed}
    if patch:
        encoded_patch = encode_patch(patch)
    if encoded_patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encoded_patch
    if warnings:
        response["warnings"] = list(warnings)
    if status is not None:
        response["status"] = status
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def encode_patch(patch: Sequence[Mapping[str, Any]]) -> str:
    """The wire form of a JSONPatch: base64 of its JSON."""
    return base64.b64encode(orjson.dumps(patch)).decode("ascii")


def allow(
    review: Review,
    patch: Sequence[Mapping[str, Any]] | None = None,
    warnings: Sequence[str] = (),
    *,
    encoded_patch: str | None = None,
) -> bytes:
    """``allowed: true``, with the patch (base64 JSONPatch, or already encoded) when there is one."""
    return orjson.dumps(_response(review, allowed=True, patch=patch, encoded_patch=encoded_patch, warnings=warnings))


def deny(review: Review, message: str, *, code: int = 403, reason: str = "Forbidden", warnings: Sequence[str] = ()) -> bytes:
    """``allowed: false``: the apiserver rejects the CREATE and shows ``message`` to the user.

    The ``status`` is a ``metav1.Status``; an empty ``reason`` is left out, as its ``omitempty`` does.
    """
    status: dict[str, Any] = {"message": message, "code": code}
    if reason:
        status["reason"] = reason
    status["status"] = "Failure"
    return orjson.dumps(_response(review, allowed=False, warnings=warnings, status=status))


def decode_patch(response: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The JSONPatch of an answer, decoded (for tests and ``meshfit`` tooling)."""
    patch = response.get("patch")
    if patch is None:
        return None
    decoded = orjson.loads(base64.b64decode(patch))
    if not isinstance(decoded, list):
        raise ValueError("patch is not a JSON array")
    return decoded
