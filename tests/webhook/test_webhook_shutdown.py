"""``meshfit webhook serve`` as a process: SIGTERM stops accepting, finishes what is in flight, exits 0."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import orjson
from sigterm_check import sigterm_mid_request
from webhook_samples import pod_shapes, review
from webhook_server_helpers import client_context

SERVING = re.compile(rb"serving https://127\.0\.0\.1:(\d+)/mutate")


def meshfit_command() -> list[str]:
    script = Path(sys.executable).parent / "meshfit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


async def test_sigterm_finishes_the_request_in_flight_and_exits_0(cert_dir: Path, policy_path: Path) -> None:
    doc = review(pod_shapes()["two-containers"], uid="in-flight")
    answered = await sigterm_mid_request(
        [*meshfit_command(), "webhook", "serve", "--cert-dir", str(cert_dir), "--policy", str(policy_path),
         "--port", "0", "--shutdown-timeout", "20"],
        listening=SERVING,
        path="/mutate",
        body=orjson.dumps(doc),
        in_flight_metric="meshfit_webhook_requests_in_flight",
        context=client_context(cert_dir / "ca.crt"),
    )
    assert answered.head.startswith(b"HTTP/1.1 200"), answered.head
    answer = orjson.loads(answered.payload)
    assert answer["response"]["uid"] == "in-flight"
    assert answer["response"]["allowed"] is True and answer["response"]["patch"]
