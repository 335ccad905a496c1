"""cli.event_loop: uvloop when installed, the standard loop on request, a clear error for a typo."""

from __future__ import annotations

import asyncio

import pytest

from cli import event_loop


async def _loop_type() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.loop_factory() is None
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(_loop_type()).startswith("asyncio")


def test_uvloop_by_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvloop  # the test and bench extras install it (meshfit[speed])

    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(_loop_type()).startswith(uvloop.__name__)


def test_unknown_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "tokio")
    with pytest.raises(ValueError, match="MESHFIT_EVENT_LOOP"):
        event_loop.loop_factory()
