"""Policy values that must be refused with their path, and a loader that never raises anything else.

One edit of the policy ConfigMap reaches every replica of the webhook and the
extender at once, so a value that escapes validation takes the whole fleet of
servers down: every non-finite, out-of-range, over-deep or over-large value is
a :class:`PolicyError` naming the field, and any exception at all while loading
is one too (the fuzz tests below).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from example_budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.fields import PolicyError
from policy.load import MAX_BYTES, MAX_DEPTH, MAX_NODES, parse_policy, parse_policy_text
from policy.model import Policy

SHIPPED = yaml.safe_load(yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml").read_text())["data"]["policy.yaml"])


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SHIPPED)
    node: Any = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return doc


def _refused(doc: Any, path: str) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    text = info.value.one_line()
    assert path in text, text
    return text


@pytest.mark.parametrize(("path", "value"), [
    ("versions.rules.1.percent", float("inf")),
    ("versions.rules.1.percent", float("nan")),
    ("versions.rules.1.percent", "1e999999999"),
    ("versions.rules.1.percent", 100.5),
    ("scheduling.weights.cpu", 10**400),
    ("scheduling.weights.cpu", -1),
    ("scheduling.exposureCeiling.cpu", float("inf")),
    ("scheduling.exposureWeight", "1e400"),
    ("resources.guaranteed.cpu", float("-inf")),
    ("sidecars.1.sizing.fixed.cpu", "1e1000000"),
    ("sidecars.1.sizing.fixed.memory", 10**40),
    ("sidecars.0.sizing.ratio.cpu", "9" * 70),
    ("sidecars.0.cpuRequestFloor", "-1"),
])
def test_non_finite_and_out_of_range_values_are_refused_with_their_path(path: str, value: Any) -> None:
    _refused(_with(path, value), path.replace(".1.", "[1].").replace(".0.", "[0].").replace("rules.1", "rules[1]"))


def test_percent_at_its_bounds() -> None:
    assert parse_policy(_with("versions.rules.1.percent", 100)).versions.rules[1].percent == 100
    assert parse_policy(_with("versions.rules.1.percent", 0)).versions.rules[1].percent == 0
    _refused(_with("versions.rules.1.percent", -0.001), "percent")


def test_nesting_beyond_the_bound_is_refused_and_at_the_bound_reads() -> None:
    def nested(depth: int) -> str:
        return "apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nx: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy_text(nested(MAX_DEPTH + 1))
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy_text(nested(100_000))  # deeper than Python's recursion: still a refusal
    with pytest.raises(PolicyError) as info:  # within the bound it reads, then fails on the unknown field
        parse_policy_text(nested(MAX_DEPTH - 2))
    assert "nested" not in str(info.value)


def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["apiVersion: meshfit.io/v1alpha1", "kind: MeshPolicy", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 5000
    # 9**10 nodes once expanded: the refusal comes from counting the node graph, before anything is built
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text)
    assert str(info.value.errors[0]) == f"expands to more than {MAX_NODES} nodes (YAML aliases?)"


def test_size_bound_at_its_edge() -> None:
    header = "apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\n#"
    with pytest.raises(PolicyError, match=f"larger than {MAX_BYTES} bytes"):
        parse_policy_text(header + "x" * (MAX_BYTES - len(header) + 1))
    with pytest.raises(PolicyError) as info:
        parse_policy_text(header + "x" * (MAX_BYTES - len(header)))
    assert "larger than" not in str(info.value)


def test_an_integer_yaml_cannot_build_is_a_refusal_naming_the_exception() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text("apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nx: " + "9" * 100_000 + "\n")
    assert [e.message for e in info.value.errors] == [
        "cannot be read: ValueError: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 100000 digits; use sys.set_int_max_str_digits() to increase the limit"]


def test_nine_thousand_rules_are_all_read_in_order() -> None:
    doc = copy.deepcopy(SHIPPED)
    doc["versions"]["rules"] = [{"name": f"r{i}", "type": "app", "sidecar": "rpc-mesh", "version": "1.8.1",
                                 "apps": [f"app-{i}"]} for i in range(9000)]
    rules = parse_policy_text(yaml.safe_dump(doc)).versions.rules
    assert len(rules) == 9000
    assert (rules[0].name, rules[-1].name, rules[-1].apps) == ("r0", "r8999", ("app-8999",))


# -- fuzzing: whatever the document, a Policy or a PolicyError -------------------------

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**400),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                     st.sampled_from(["1e1000000", "-1", "1/0", "0x10", "Infinity", "1Gi", "500m", "100%", "1/3"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                       max_leaves=20)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(SHIPPED)


@settings(max_examples=examples(400))
@given(st.lists(st.tuples(st.sampled_from(PATHS), _VALUES), min_size=1, max_size=4))
def test_fuzzed_values_anywhere_give_a_policy_or_a_policy_error(edits: list[tuple[tuple[Any, ...], Any]]) -> None:
    doc = copy.deepcopy(SHIPPED)
    for path, value in edits:
        node: Any = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        assert isinstance(parse_policy(doc), Policy)
    except PolicyError as exc:
        assert exc.errors and all(str(e) for e in exc.errors)


@settings(max_examples=examples(300))
@given(st.data())
def test_fuzzed_text_gives_a_policy_or_a_policy_error(data: st.DataObject) -> None:
    text = yaml.safe_dump(SHIPPED)
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 20))
        insert = data.draw(st.text(alphabet=":-[]{}&*!|>'\"#%@`\n \t0123456789abcdefe.", max_size=8))
        text = text[:at] + insert + text[at + cut:]
    try:
        assert isinstance(parse_policy_text(text), Policy)
    except PolicyError as exc:
        assert exc.errors


def _expanding(extra: int) -> str:
    """A document of 249,506 + ``extra`` nodes once its 498 aliases are expanded.

    root 1; key x 1 and its list 1 + 499; key y 1 and its list 1 + 498 × 500 (each alias
    counts as the whole list it names); key z 1 and its list 1 + ``extra``.
    """
    return ("x: &a [" + ", ".join(["0"] * 499) + "]\ny: [" + ", ".join(["*a"] * 498) + "]\nz: ["
            + ", ".join(["0"] * extra) + "]\n")


@pytest.mark.parametrize(("extra", "refused"), [(493, False), (494, False), (495, True)])
def test_node_bound_at_its_edge(extra: int, refused: bool) -> None:
    assert 249_506 + 494 == MAX_NODES
    with pytest.raises(PolicyError) as info:
        parse_policy_text(_expanding(extra))
    message = str(info.value.errors[0])
    if refused:
        assert message == f"expands to more than {MAX_NODES} nodes (YAML aliases?)"
    else:
        assert message == "apiVersion: must be meshfit.io/v1alpha1, got None"  # read whole, then judged


@pytest.mark.parametrize(("depth", "message"), [(MAX_DEPTH - 1, "must be a mapping, got a list"),
                                                (MAX_DEPTH, "must be a mapping, got a list"),
                                                (MAX_DEPTH + 1, f"is nested too deeply (more than {MAX_DEPTH} levels)")])
def test_depth_bound_at_its_edge(depth: int, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text("[" * depth + "0" + "]" * depth)
    assert str(info.value.errors[0]) == message


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1, 2\n", "not valid YAML: line 2, column 1: did not find expected ',' or ']'"),
    ("a: b: c\n", "not valid YAML: line 1, column 5: mapping values are not allowed in this context"),
    (5, "must be text, got int"),
])
def test_unreadable_text_says_where_and_why(text: object, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, source="policy.yaml")  # type: ignore[arg-type]
    assert info.value.source == "policy.yaml"
    assert [(e.path, e.message) for e in info.value.errors] == [("", message)]


def test_a_configmap_in_a_file_is_refused_under_the_files_name() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p, namespace: ops}\ndata:\n  policy.yaml: 'kind: Nope'\n"
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, source="file.yaml")
    assert info.value.source == "file.yaml"


@pytest.mark.parametrize(("depth", "refused"), [(MAX_DEPTH - 1, False), (MAX_DEPTH, True)])
def test_depth_is_counted_inside_a_mapping_key_and_value_alike(depth: int, refused: bool) -> None:
    # the root mapping is level 0, its key and value level 1: depth brackets put the scalar at 1 + depth
    nested = "[" * depth + "0" + "]" * depth
    too_deep = f"is nested too deeply (more than {MAX_DEPTH} levels)"
    for text, read_whole in ((f"? {nested}\n: v\n", "not valid YAML: line 1, column 3: found unhashable key"),
                             (f"k: {nested}\n", "apiVersion: must be meshfit.io/v1alpha1, got None")):
        with pytest.raises(PolicyError) as info:
            parse_policy_text(text)
        assert str(info.value.errors[0]) == (too_deep if refused else read_whole)


def test_text_the_yaml_reader_refuses_without_a_position_is_refused_with_its_reason() -> None:
    # a control character fails in PyYAML's reader, whose error has no line and column
    with pytest.raises(PolicyError) as info:
        parse_policy_text("a: \x07\n")
    assert info.value.source == "policy"  # the name used when the caller gives none
    assert [(e.path, e.message) for e in info.value.errors] == [
        ("", 'not valid YAML: unacceptable character #x0007: control characters are not allowed\n'
             '  in "<unicode string>", position 3')]
