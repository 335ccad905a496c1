"""The two writes a re-accounting plan makes: the resize body and the record's compare-and-swap patch.

Written out by hand from their contract (policy/reaccount.py): the resize
names only the changed containers, and the record patch tests the record read
and every container's resources before it replaces the record.
"""

from __future__ import annotations

from policy.reaccount import ContainerChange, ReaccountPlan
from policy.record import AccountingRecord

SIDE = {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}
SIDE_AFTER = {"requests": {"cpu": "150m"}, "limits": {"cpu": "300m"}}
APP_AFTER = {"requests": {"cpu": "850m"}}
PATH = "/metadata/annotations/meshfit.io~1accounting"


def plan(pod_level: dict | None = None, record: AccountingRecord | None = None) -> ReaccountPlan:
    return ReaccountPlan("resize", "sizing changed", changes=(
        ContainerChange("initContainers", "rpc-mesh", SIDE, SIDE_AFTER),
        ContainerChange("containers", "app", {"requests": {"cpu": "900m"}}, APP_AFTER),
        ContainerChange("initContainers", "log-agent", SIDE, SIDE_AFTER),
    ), record=record, pod_level=pod_level or {})


def test_the_resize_body_names_each_changed_container_in_its_list() -> None:
    assert plan().resize_body() == {"spec": {
        "initContainers": [{"name": "rpc-mesh", "resources": SIDE_AFTER}, {"name": "log-agent", "resources": SIDE_AFTER}],
        "containers": [{"name": "app", "resources": APP_AFTER}]}}


def test_the_resize_body_carries_the_pod_level_resources_when_they_change() -> None:
    level = {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}
    assert plan(pod_level=level).resize_body()["spec"]["resources"] == level
    assert "resources" not in plan().resize_body()["spec"]


class Record(AccountingRecord):
    """A record whose text is fixed, so the patch's last value is known here."""

    def __init__(self) -> None:  # noqa: D107 - no fields needed
        pass

    def to_json(self) -> str:
        return '{"v":1}'


def test_the_record_patch_tests_the_record_and_every_containers_resources_then_replaces_the_record() -> None:
    pod = {"metadata": {"annotations": {"meshfit.io/accounting": '{"v":0}', "other": "x"}},
           "spec": {"initContainers": [{"name": "rpc-mesh", "resources": SIDE}, {"name": "migrate"}],
                    "containers": [{"name": "app", "resources": {"requests": {"cpu": "900m"}}}]}}
    assert plan(record=Record()).record_patch(pod) == [
        {"op": "test", "path": PATH, "value": '{"v":0}'},
        {"op": "test", "path": "/spec/initContainers/0/resources", "value": SIDE},
        {"op": "test", "path": "/spec/initContainers/1/resources", "value": {}},
        {"op": "test", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "900m"}}},
        {"op": "replace", "path": PATH, "value": '{"v":1}'},
    ]


def test_the_record_patch_of_a_pod_without_annotations_tests_for_no_record() -> None:
    assert plan(record=Record()).record_patch({"spec": {}}) == [
        {"op": "test", "path": PATH, "value": None},
        {"op": "replace", "path": PATH, "value": '{"v":1}'},
    ]
