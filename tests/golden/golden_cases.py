"""Golden files for the injection engine, in the manner of Istio's injector tests.

Each case is an input manifest and the exact stream ``meshfit inject`` makes
of it under one policy, kept in ``tests/golden/expected/<case>.<policy>.yaml``
with the engine's warnings as ``# warning:`` lines on top. Inputs are the
examples people read (``manifests/examples/``) and the odd shapes the engine
must get right (``tests/golden/inputs/``); each runs under the shipped policy
and, except the examples, under the same policy with the swap variant.

Outputs are compared as data, not text: YAML documents parsed, and annotation
values that hold JSON (``meshfit.io/status``, ``meshfit.io/accounting``) parsed
too, so key order and formatting never fail a case; only what the engine says.

When the engine's output changes on purpose, ``make golden`` (``python -m
tests.golden --update``) rewrites every expected file and prints the diff to
review before committing it.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from cli.main import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INPUTS = HERE / "inputs"
EXPECTED = HERE / "expected"
EXAMPLES = REPO / "manifests" / "examples"
SHIPPED_POLICY = REPO / "manifests" / "policy.yaml"
WARNING = "# warning: "

#: Policies a case runs under: name -> the policy text.
POLICIES: dict[str, str] = {
    "shipped": SHIPPED_POLICY.read_text(),
    "swap": SHIPPED_POLICY.read_text().replace("overcommitVariant: auto", "overcommitVariant: swap", 1),
}
assert POLICIES["swap"] != POLICIES["shipped"], "manifests/policy.yaml no longer sets overcommitVariant: auto"


@dataclass(frozen=True)
class Case:
    """One input under one policy."""

    source: Path
    policy: str

    @property
    def name(self) -> str:
        return f"{self.source.stem}.{self.policy}"

    @property
    def expected(self) -> Path:
        return EXPECTED / f"{self.name}.yaml"


def cases() -> list[Case]:
    """Every case, examples first."""
    out = [Case(path, "shipped") for path in sorted(EXAMPLES.glob("*.yaml"))]
    for path in sorted(INPUTS.glob("*.yaml")):
        out.extend(Case(path, policy) for policy in POLICIES)
    return out


def render(case: Case) -> str:
    """The expected file's text for ``case``: warnings as comments, then ``meshfit inject``'s YAML."""
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICIES[case.policy])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["inject", "-f", str(case.source), "--policy", str(policy), "-o", "yaml"])
    if code != 0:
        raise RuntimeError(f"{case.name}: meshfit inject exited {code}: {err.getvalue()}")
    header = [f"# {case.source.relative_to(REPO)} injected with the {case.policy} policy "
              "(regenerate: make golden)"]
    where = str(case.source.relative_to(REPO))  # the same text in any checkout
    header += [WARNING + line.removeprefix("warning: ").replace(str(case.source), where)
               for line in err.getvalue().splitlines() if line.strip()]
    return "\n".join(header) + "\n" + out.getvalue()


def _normal(value: Any) -> Any:
    """``value`` with JSON held in strings parsed, recursively: what the comparison looks at."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(orjson.JSONDecodeError):
            return _normal(orjson.loads(value))
    return value


def meaning(text: str) -> tuple[list[str], list[Any]]:
    """The warnings and the documents of an expected file, normalised for comparison."""
    warnings = [line.removeprefix(WARNING) for line in text.splitlines() if line.startswith(WARNING)]
    return warnings, [_normal(doc) for doc in yaml.safe_load_all(text) if doc is not None]


def differences(case: Case) -> str:
    """'' when the engine's output means what the expected file says; else a readable diff."""
    if not case.expected.exists():
        return f"{case.expected.relative_to(REPO)} does not exist"
    want_text, got_text = case.expected.read_text(), render(case)
    if meaning(want_text) == meaning(got_text):
        return ""
    return _diff(case, _canonical(want_text), _canonical(got_text))


def _canonical(text: str) -> str:
    warnings, docs = meaning(text)
    return "".join(f"{WARNING}{w}\n" for w in warnings) + yaml.safe_dump_all(docs, sort_keys=True)


def _diff(case: Case, old: str, new: str) -> str:
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 f"{case.name} (expected)", f"{case.name} (engine now)")
    return "".join(lines)


def update() -> Iterator[tuple[str, str]]:
    """Rewrite every expected file; yield ``(name, diff)`` for each one whose meaning changed."""
    EXPECTED.mkdir(exist_ok=True)
    known = {case.expected for case in cases()}
    for stale in sorted(set(EXPECTED.glob("*.yaml")) - known):
        stale.unlink()
        yield stale.stem, f"removed {stale.relative_to(REPO)}: its input is gone\n"
    for case in cases():
        new = render(case)
        old = case.expected.read_text() if case.expected.exists() else ""
        changed = not old or meaning(old) != meaning(new)
        if old != new:
            case.expected.write_text(new)
        if changed:
            yield case.name, _diff(case, _canonical(old) if old else "", _canonical(new))
