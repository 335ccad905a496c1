"""AdmissionReview parsing and answers: what is accepted, what is a 400, what goes back."""

from __future__ import annotations

import base64

import orjson
import pytest
from webhook_samples import configmap, pod, container, review

from webhook.review import ReviewError, allow, decode_patch, deny, parse_review


def dumps(document: object) -> bytes:
    return orjson.dumps(document)


def test_parses_a_v1_pod_create() -> None:
    doc = review(pod("web", [container("app", "1", "1Gi")]), uid="abc", dry_run=True)
    parsed = parse_review(dumps(doc))
    assert parsed.api_version == "admission.k8s.io/v1"
    assert parsed.uid == "abc"
    assert parsed.is_pod_create
    assert parsed.dry_run is True
    assert parsed.namespace == "shop" and parsed.name == "web"
    assert parsed.object == doc["request"]["object"]


def test_v1beta1_is_answered_in_v1beta1() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]), api_version="admission.k8s.io/v1beta1")))
    answer = orjson.loads(allow(parsed))
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["kind"] == "AdmissionReview"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (review(configmap(), kind=("", "v1", "ConfigMap"), resource="configmaps"), "another kind"),
        (review(pod("web", [container("app")]), sub_resource="status"), "a subresource"),
        (review(pod("web", [container("app")]), operation="UPDATE"), "an UPDATE"),
        (review(None, operation="DELETE"), "a DELETE without object"),
        (review(pod("web", [container("app")]), kind=("apps", "v1", "Pod")), "a Pod of another group"),
    ],
)
def test_only_a_plain_pod_create_is_mutated(doc: dict, reason: str) -> None:
    assert not parse_review(dumps(doc)).is_pod_create, reason


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (dumps({"kind": "AdmissionReview", "request": {}}), "apiVersion must be"),
        (dumps({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview"}), "apiVersion must be"),
        (dumps({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}), "kind must be AdmissionReview"),
        (dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}), "request is required"),
        (dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": []}), "request must be an object"),
    ],
)
def test_garbage_is_a_review_error_with_a_message(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        parse_review(body)


def _mangled(path: tuple[str, ...], value: object) -> bytes:
    doc = review(pod("web", [container("app")]))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return dumps(doc)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("request", "uid"), KeyError, r"request\.uid is required"),
        (("request", "uid"), "", r"request\.uid must not be empty"),
        (("request", "uid"), 7, r"request\.uid must be a string"),
        (("request", "kind"), KeyError, r"request\.kind is required"),
        (("request", "kind"), "Pod", r"request\.kind must be an object"),
        (("request", "kind", "kind"), KeyError, r"request\.kind\.kind is required"),
        (("request", "operation"), KeyError, r"request\.operation is required"),
        (("request", "dryRun"), "yes", r"request\.dryRun must be a boolean"),
        (("request", "object"), KeyError, r"request\.object is required for a Pod CREATE"),
        (("request", "object"), "pod", r"request\.object must be an object"),
        (("request", "object", "spec"), KeyError, r"request\.object\.spec must be an object"),
        (("request", "object", "metadata"), ["x"], r"request\.object\.metadata must be an object"),
        (("request", "namespace"), 3, r"request\.namespace must be a string"),
    ],
)
def test_schema_errors_name_the_field(path: tuple[str, ...], value: object, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        parse_review(_mangled(path, value))


def test_allow_with_patch_is_base64_jsonpatch() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]), uid="u-1")))
    patch = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    answer = orjson.loads(allow(parsed, patch, ["heads up"]))
    response = answer["response"]
    assert response["uid"] == "u-1"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert orjson.loads(base64.b64decode(response["patch"])) == patch
    assert decode_patch(response) == patch
    assert response["warnings"] == ["heads up"]
    assert "status" not in response


def test_allow_without_patch_has_no_patch_fields() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]))))
    response = orjson.loads(allow(parsed, []))["response"]
    assert response == {"uid": parsed.uid, "allowed": True}


def test_deny_carries_status_for_the_user() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]))))
    response = orjson.loads(deny(parsed, "no"))["response"]
    assert response["allowed"] is False
    assert response["status"] == {"message": "no", "code": 403, "reason": "Forbidden", "status": "Failure"}
    assert "patch" not in response


def test_deny_carries_warnings_and_the_given_code_and_reason() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]), uid="u-2")))
    response = orjson.loads(deny(parsed, "too big", code=400, reason="BadRequest", warnings=["look here"]))["response"]
    assert response == {
        "uid": "u-2", "allowed": False, "warnings": ["look here"],
        "status": {"message": "too big", "code": 400, "reason": "BadRequest", "status": "Failure"},
    }


def test_deny_without_reason_or_message_is_still_a_failure_status() -> None:
    parsed = parse_review(dumps(review(pod("web", [container("app")]), uid="u-3")))
    response = orjson.loads(deny(parsed, "", reason=""))["response"]
    assert response == {"uid": "u-3", "allowed": False, "status": {"message": "", "code": 403, "status": "Failure"}}


@pytest.mark.parametrize("document", [{}, {"op": "add"}, "add", 1])
def test_a_patch_that_is_not_a_json_array_is_refused(document: object) -> None:
    with pytest.raises(ValueError) as info:
        decode_patch({"patch": base64.b64encode(orjson.dumps(document)).decode()})
    assert str(info.value) == "patch is not a JSON array"


def test_no_patch_decodes_to_none() -> None:
    assert decode_patch({"uid": "u", "allowed": True}) is None
