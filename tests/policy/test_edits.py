"""Copy-on-write pod edits and the JSONPatch they record.

The recorded operations are checked two ways: written out by hand, and replayed on
the untouched original with the ``jsonpatch`` library (an independent RFC 6902
implementation), which must give the edited pod.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from policy.edits import PodEditor, json_copy, pointer


def _pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "annotations": {"a": "1"}},
        "spec": {"containers": [{"name": "app", "env": [{"name": "X", "value": "1"}]}, {"name": "two"}],
                 "volumes": [{"name": "v"}]},
    }


def _replays(editor: PodEditor) -> None:
    assert jsonpatch.apply_patch(editor.original, editor.ops) == editor.pod


def test_json_copy_is_deep_and_turns_tuples_into_lists() -> None:
    value = {"ports": ({"containerPort": 1},), "n": [1, {"x": None}]}
    copy = json_copy(value)
    assert copy == {"ports": [{"containerPort": 1}], "n": [1, {"x": None}]}
    assert copy["n"] is not value["n"] and copy["n"][1] is not value["n"][1]


@pytest.mark.parametrize(("path", "text"), [
    ((), ""),
    (("metadata", "annotations", "meshfit.io/status"), "/metadata/annotations/meshfit.io~1status"),
    (("a~b",), "/a~0b"),
    (("~/",), "/~0~1"),   # "~" first: the "~" of "~1" must not be escaped again
    (("spec", "containers", 0, "env", 12), "/spec/containers/0/env/12"),
])
def test_pointer_escapes_keys(path: tuple[str | int, ...], text: str) -> None:
    assert pointer(path) == text


@pytest.mark.parametrize(("path", "value"), [
    (("metadata", "name"), "p"),
    (("spec", "containers", 1, "name"), "two"),
    (("spec", "containers", 2, "name"), "default"),       # index past the end
    (("spec", "missing", "x"), "default"),                # key missing
    (("metadata", "name", "x"), "default"),               # below a string
    (("spec", "containers", "x"), "default"),             # a key into a list
    (("metadata", "labels"), "default"),                  # null reads as missing
    (("metadata", "labels", "x"), "default"),             # and so does anything below it
    ((), None),                                           # the whole pod: checked below
])
def test_get_reads_the_edited_pod_or_the_default(path: tuple[str | int, ...], value: Any) -> None:
    p = _pod()
    p["metadata"]["labels"] = None
    editor = PodEditor(p)
    if path:
        assert editor.get(path, "default") == value
    else:
        assert editor.get(()) is editor.pod
    assert editor.get(("spec", "missing")) is None


def test_set_replaces_an_existing_key() -> None:
    original = _pod()
    editor = PodEditor(original)
    editor.set(("metadata", "annotations", "a"), "2")
    assert editor.ops == [{"op": "replace", "path": "/metadata/annotations/a", "value": "2"}]
    assert editor.get(("metadata", "annotations", "a")) == "2"
    assert original == _pod()  # the caller's pod is untouched
    _replays(editor)


def test_set_adds_a_new_key_and_its_missing_parents_in_one_operation() -> None:
    editor = PodEditor(_pod())
    editor.set(("metadata", "labels", "team", "x"), "y")
    assert editor.ops == [{"op": "add", "path": "/metadata/labels", "value": {"team": {"x": "y"}}}]
    editor.set(("metadata", "annotations", "b"), "2")
    assert editor.ops[1] == {"op": "add", "path": "/metadata/annotations/b", "value": "2"}
    assert editor.pod["metadata"]["labels"] == {"team": {"x": "y"}}
    _replays(editor)


def test_set_through_a_null_parent_adds_over_it() -> None:
    p = _pod()
    p["metadata"]["labels"] = None
    editor = PodEditor(p)
    editor.set(("metadata", "labels", "x"), "y")
    assert editor.ops == [{"op": "replace", "path": "/metadata/labels", "value": {"x": "y"}}]
    _replays(editor)


def test_set_of_a_list_item_replaces_it() -> None:
    editor = PodEditor(_pod())
    editor.set(("spec", "containers", 1), {"name": "three"})
    assert editor.ops == [{"op": "replace", "path": "/spec/containers/1", "value": {"name": "three"}}]
    editor.set(("spec", "containers", 0, "env", 0, "value"), "2")
    assert editor.ops[1] == {"op": "replace", "path": "/spec/containers/0/env/0/value", "value": "2"}
    _replays(editor)


def test_only_the_edited_path_is_copied() -> None:
    original = _pod()
    editor = PodEditor(original)
    editor.set(("spec", "containers", 0, "env", 0, "value"), "2")
    pod, spec = editor.pod, editor.pod["spec"]
    assert pod is not original and spec is not original["spec"]
    assert spec["containers"] is not original["spec"]["containers"]
    assert spec["containers"][0] is not original["spec"]["containers"][0]
    assert spec["containers"][0]["env"][0] is not original["spec"]["containers"][0]["env"][0]
    # siblings are shared, not copied
    assert pod["metadata"] is original["metadata"]
    assert spec["volumes"] is original["spec"]["volumes"]
    assert spec["containers"][1] is original["spec"]["containers"][1]
    assert isinstance(spec["containers"], list) and isinstance(spec["containers"][0]["env"], list)
    assert original == _pod()
    # a second edit on the same path copies nothing again
    env = spec["containers"][0]["env"]
    editor.set(("spec", "containers", 0, "env", 0, "name"), "Y")
    assert editor.pod["spec"]["containers"][0]["env"] is env
    _replays(editor)


def test_a_value_once_recorded_is_not_changed_by_a_later_edit_below_it() -> None:
    editor = PodEditor(_pod())
    sidecar = {"name": "mesh", "resources": {"limits": {"cpu": "1"}}}
    editor.insert(("spec", "containers"), 0, sidecar)
    editor.set(("spec", "containers", 0, "resources", "limits", "cpu"), "2")
    assert editor.ops[0]["value"] == {"name": "mesh", "resources": {"limits": {"cpu": "1"}}}
    assert sidecar == {"name": "mesh", "resources": {"limits": {"cpu": "1"}}}
    assert editor.get(("spec", "containers", 0, "resources", "limits", "cpu")) == "2"
    _replays(editor)


@pytest.mark.parametrize(("index", "op", "names"), [
    (None, {"op": "add", "path": "/spec/containers/-", "value": {"name": "new"}}, ["app", "two", "new"]),
    (0, {"op": "add", "path": "/spec/containers/0", "value": {"name": "new"}}, ["new", "app", "two"]),
    (1, {"op": "add", "path": "/spec/containers/1", "value": {"name": "new"}}, ["app", "new", "two"]),   # len - 1
    (2, {"op": "add", "path": "/spec/containers/-", "value": {"name": "new"}}, ["app", "two", "new"]),   # len
    (3, {"op": "add", "path": "/spec/containers/-", "value": {"name": "new"}}, ["app", "two", "new"]),   # past it
])
def test_insert_into_a_list(index: int | None, op: dict[str, Any], names: list[str]) -> None:
    original = _pod()
    editor = PodEditor(original)
    editor.insert(("spec", "containers"), index, {"name": "new"})
    assert editor.ops == [op]
    assert [c["name"] for c in editor.pod["spec"]["containers"]] == names
    assert [c["name"] for c in original["spec"]["containers"]] == ["app", "two"]
    _replays(editor)


@pytest.mark.parametrize("index", [None, 0, 5])
def test_insert_creates_a_missing_list(index: int | None) -> None:
    editor = PodEditor(_pod())
    editor.insert(("spec", "initContainers"), index, {"name": "init"})
    assert editor.ops == [{"op": "add", "path": "/spec/initContainers", "value": [{"name": "init"}]}]
    _replays(editor)


def test_insert_into_an_empty_list() -> None:
    p = _pod()
    p["spec"]["initContainers"] = []
    editor = PodEditor(p)
    editor.insert(("spec", "initContainers"), 0, {"name": "init"})
    assert editor.ops == [{"op": "add", "path": "/spec/initContainers/-", "value": {"name": "init"}}]
    assert p["spec"]["initContainers"] == []
    _replays(editor)


def test_insert_twice_into_a_nested_list() -> None:
    editor = PodEditor(_pod())
    editor.insert(("spec", "containers", 0, "env"), 0, {"name": "A", "value": "a"})
    editor.insert(("spec", "containers", 0, "env"), None, {"name": "B", "value": "b"})
    assert [e["name"] for e in editor.pod["spec"]["containers"][0]["env"]] == ["A", "X", "B"]
    assert [o["path"] for o in editor.ops] == ["/spec/containers/0/env/0", "/spec/containers/0/env/-"]
    _replays(editor)


def test_a_dropped_copy_keeps_its_id_from_being_taken_for_a_new_value() -> None:
    """The editor keeps every copy it made, so a copy an edit replaces is never freed and its id
    never given to a new value; a new value with a reused id would be taken as owned and be edited
    in place, under the caller and the operation that recorded it. CPython gives a freed list's
    memory to the next list made, so without that the rounds below would show it."""
    for _ in range(20):
        editor = PodEditor(_pod())
        editor.set(("spec", "containers", 1, "name"), "2")   # copies spec, its containers and the second one
        editor.set(("spec", "containers"), [])                # the copied containers list is dropped
        handed = [{"name": "x"}]
        editor.set(("spec", "containers"), handed)
        editor.set(("spec", "containers", 0, "name"), "y")
        assert handed == [{"name": "x"}]
        assert editor.ops[2] == {"op": "replace", "path": "/spec/containers", "value": [{"name": "x"}]}
        assert editor.get(("spec", "containers")) == [{"name": "y"}]
        _replays(editor)
