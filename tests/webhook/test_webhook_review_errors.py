"""Every malformed AdmissionReview gets its own exact message; every well-formed field is read as sent.

The messages are part of the contract: kube-apiserver logs them and an
operator greps for them, so each is stated here in full.
"""

from __future__ import annotations

import copy

import orjson
import pytest
from webhook_samples import container, pod, review

from webhook.review import ReviewError, parse_review

GOOD = review(pod("web", [container("app", "1", "1Gi")]), namespace="shop", uid="u-1")


def _with(path: tuple, value: object) -> bytes:
    doc = copy.deepcopy(GOOD)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return orjson.dumps(doc)


_DELETE = object()


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "body is not JSON"),
    (b"[1, 2]", "body must be a JSON object, got list"),
    (b'"text"', "body must be a JSON object, got str"),
    (_with(("kind",), "Review"), "kind must be AdmissionReview, got 'Review'"),
    (_with(("kind",), _DELETE), "kind must be AdmissionReview, got nothing"),
    (_with(("kind",), ["AdmissionReview"]), "kind must be AdmissionReview, got a JSON list"),
    (_with(("apiVersion",), ["admission.k8s.io/v1"]), "apiVersion must be"),
    (_with(("apiVersion",), "v1"), "apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1, got 'v1'"),
    (_with(("request",), _DELETE), ".request is required"),
    (_with(("request",), "x"), ".request must be an object, got str"),
    (_with(("request", "uid"), _DELETE), "request.uid is required"),
    (_with(("request", "uid"), 5), "request.uid must be a string, got int"),
    (_with(("request", "uid"), ""), "request.uid must not be empty"),
    (_with(("request", "kind"), _DELETE), "request.kind is required"),
    (_with(("request", "kind"), []), "request.kind must be an object, got list"),
    (_with(("request", "kind", "kind"), _DELETE), "request.kind.kind is required"),
    (_with(("request", "kind", "group"), 1), "request.kind.group must be a string, got int"),
    (_with(("request", "kind", "version"), 1), "request.kind.version must be a string, got int"),
    (_with(("request", "resource"), "pods"), "request.resource must be an object, got str"),
    (_with(("request", "resource", "resource"), 1), "request.resource.resource must be a string, got int"),
    (_with(("request", "operation"), _DELETE), "request.operation is required"),
    (_with(("request", "dryRun"), "yes"), "request.dryRun must be a boolean, got str"),
    (_with(("request", "subResource"), 1), "request.subResource must be a string, got int"),
    (_with(("request", "namespace"), 1), "request.namespace must be a string, got int"),
    (_with(("request", "name"), 1), "request.name must be a string, got int"),
    (_with(("request", "object"), _DELETE), "request.object is required for a Pod CREATE"),
    (_with(("request", "object"), 1), "request.object must be an object, got int"),
    (_with(("request", "object", "metadata"), 1), "request.object.metadata must be an object"),
    (_with(("request", "object", "metadata", "labels"), ["app=web"]),
     "request.object.metadata.labels must be an object, got list"),
    (_with(("request", "object", "metadata", "annotations"), "a=b"),
     "request.object.metadata.annotations must be an object, got str"),
    (_with(("request", "object", "spec"), _DELETE), "request.object.spec must be an object"),
])
def test_each_malformed_review_has_its_message(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError) as info:
        parse_review(body)
    assert str(info.value).startswith(message), str(info.value)


def test_every_field_is_read_as_sent() -> None:
    r = parse_review(orjson.dumps(GOOD))
    assert (r.api_version, r.uid, r.group, r.version, r.kind) == ("admission.k8s.io/v1", "u-1", "", "v1", "Pod")
    assert (r.resource, r.sub_resource, r.operation, r.namespace, r.dry_run) == ("pods", "", "CREATE", "shop", False)
    assert r.object == GOOD["request"]["object"]
    dry = parse_review(_with(("request", "dryRun"), True))
    assert dry.dry_run is True
    unset = parse_review(_with(("request", "dryRun"), None))
    assert unset.dry_run is False
    named = parse_review(_with(("request", "name"), "web-1"))
    assert named.name == "web-1"
    grouped = parse_review(_with(("request", "kind", "group"), "apps"))
    assert grouped.group == "apps" and not grouped.is_pod_create
    not_pod = parse_review(_with(("request", "operation"), "DELETE"))
    assert not not_pod.is_pod_create  # and no object needed for it
    parse_review(_with(("request", "operation"), "DELETE").replace(b'"object":{', b'"oldObject":{', 1))


def test_a_long_value_is_shown_cut_to_80_characters() -> None:
    with pytest.raises(ReviewError) as info:
        parse_review(_with(("kind",), "K" * 79 + "LM" + "N" * 40))
    assert str(info.value) == "kind must be AdmissionReview, got '" + "K" * 79 + "L'"


def test_a_review_without_dry_run_is_not_a_dry_run() -> None:
    assert parse_review(_with(("request", "dryRun"), _DELETE)).dry_run is False


@pytest.mark.parametrize("key", ["labels", "annotations"])
@pytest.mark.parametrize("value", [None, {}, {"app": "web"}])
def test_labels_and_annotations_absent_empty_or_a_map_are_read(key: str, value: object) -> None:
    review_ = parse_review(_with(("request", "object", "metadata", key), value))
    assert review_.object is not None and review_.object["metadata"][key] == value
