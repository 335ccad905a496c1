"""``meshfit upgrade|rollback|restart|activate|deactivate|resize``: what each asks, and the usage errors."""

from __future__ import annotations

import argparse

import pytest

from cli.main import main
from cli.targets_cmd import change_for
from policy.sidecar_status import PodStatus, SidecarStatus


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    _, err = capsys.readouterr()
    return code, err


@pytest.mark.parametrize("argv", [
    ("upgrade", "rpc-mesh", "1.8.1"),
    ("upgrade", "rpc-mesh", "1.8.1", "pod-a", "-l", "app=x"),
    ("resize", "rpc-mesh", "pod-a"),
])
def test_usage_errors_are_named(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, err = run(capsys, *argv)
    assert code != 0
    assert ("name pods or give -l SELECTOR" in err) or ("--requests and/or --limits" in err)


def _args(verb: str, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(verb=verb, sidecar="rpc-mesh", **kw)


STATUS = PodStatus("r", (SidecarStatus("rpc-mesh", "1.8.1", "i:1.8.1", "baseline", previous="1.8.0"),))


def test_each_verb_asks_for_one_thing() -> None:
    change, asked = change_for(_args("upgrade", version="1.9.0", action="hot"), STATUS)
    assert (change.version, change.action, asked) == ("1.9.0", "hot", "1.9.0")
    change, asked = change_for(_args("rollback"), STATUS)
    assert (change.version, asked) == ("1.8.0", "1.8.0")
    change, _ = change_for(_args("activate"), STATUS)
    assert change.active is True
    change, _ = change_for(_args("deactivate"), STATUS)
    assert change.active is False
    first, _ = change_for(_args("restart"), STATUS)
    second, _ = change_for(_args("restart"), STATUS)
    assert first.restart and second.restart and first.restart != second.restart
    change, _ = change_for(_args("resize", requests=None, limits="cpu=500m"), STATUS)
    assert change.action == "resize" and change.resources is not None
    assert change.resources["limits"]["cpu"].nanos == 500_000_000


def test_a_rollback_without_a_previous_version_is_refused() -> None:
    fresh = PodStatus("r", (SidecarStatus("rpc-mesh", "1.8.0", "i:1.8.0", "baseline"),))
    with pytest.raises(LookupError, match="no previous version"):
        change_for(_args("rollback"), fresh)
