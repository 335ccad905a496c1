"""`meshfit rollout create`'s flags make the spec the resource would hold; status knows when it is over."""

from __future__ import annotations

import argparse

import pytest

from cli.errors import CommandError
from cli.main import build_parser
from cli.rollout_cmd import finished, spec_from_args
from controller.rollout_spec import parse_spec


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["rollout", "create", "r1", "-n", "shop", *argv])


def test_flags_make_a_spec_the_controller_accepts() -> None:
    args = _args("--sidecar", "rpc-mesh", "--version", "1.8.1", "-l", "tier=web,env=prod", "--zone", "z1",
                 "--batches", "1,10%,100%", "--bake", "2m", "--pause-after-canary", "--max-unavailable", "2",
                 "--prometheus", "http://p:9090", "--metric", 'errors:maxRatio=1.5:sum(e{pod=~"{{pods}}"})')
    spec = spec_from_args(args)
    assert spec["selector"] == {"namespaces": ["shop"], "podSelector": {"matchLabels": {"tier": "web", "env": "prod"}},
                                "zones": ["z1"]}
    assert spec["batches"] == [{"count": 1, "bake": "2m", "pause": True}, {"percent": 10, "bake": "2m"},
                               {"percent": 100, "bake": "2m"}]
    assert spec["maxUnavailable"] == 2
    assert spec["analysis"]["prometheus"]["metrics"] == [
        {"name": "errors", "query": 'sum(e{pod=~"{{pods}}"})', "maxRatio": 1.5}]
    parsed = parse_spec(spec)
    assert parsed.batches[0].pause and parsed.analysis.prometheus is not None


@pytest.mark.parametrize("argv", [
    ("--sidecar", "rpc-mesh"),
    ("--sidecar", "rpc-mesh", "--version", "1", "--batches", "1,half"),
    ("--sidecar", "rpc-mesh", "--version", "1", "--metric", "errors:mean=1:up", "--prometheus", "http://p"),
    ("--sidecar", "rpc-mesh", "--version", "1", "--metric", "errors:max=1:up"),
])
def test_bad_flags_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        spec_from_args(_args(*argv))


@pytest.mark.parametrize(("status", "done"), [
    ({"phase": "Succeeded"}, True), ({"phase": "Failed", "step": "RolledBack"}, True),
    ({"phase": "Failed", "step": "RollingBack"}, False), ({"phase": "Aborted", "step": "Stopped"}, True),
    ({"phase": "Paused", "step": "Waiting"}, False), ({"phase": "Progressing"}, False), ({}, False),
])
def test_a_watch_ends_when_nothing_more_will_happen(status: dict[str, str], done: bool) -> None:
    assert finished({"status": status}) is done
