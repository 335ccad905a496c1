"""``meshfit extender serve`` as a process: SIGTERM stops accepting, finishes the call in flight, exits 0."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import orjson
import yaml
from extender_shapes import POLICY_FILE, app_pod, bound, meshed, node
from sigterm_check import sigterm_mid_request

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


async def test_sigterm_finishes_the_call_in_flight_and_exits_0(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.yaml"
    snapshot.write_text(yaml.safe_dump_all([
        node("node-a", "8", "16Gi"), node("node-b", "8", "16Gi"),
        bound(meshed(app_pod("api-0", "2", "4Gi")), "node-a"),
    ]))
    root = str(Path(__file__).resolve().parents[2])
    answered = await sigterm_mid_request(
        [sys.executable, "-m", "cli", "extender", "serve", "--snapshot", str(snapshot),
         "--policy", str(POLICY_FILE), "--port", "0"],
        listening=LISTENING,
        path="/filter",
        body=orjson.dumps({"Pod": meshed(app_pod("web-0", "1", "2Gi")), "NodeNames": ["node-a", "node-b"]}),
        in_flight_metric="meshfit_extender_requests_in_flight",
        env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
        split=50,
    )
    assert answered.head.startswith(b"HTTP/1.1 200"), answered.head
    answer = orjson.loads(answered.payload)
    assert sorted(answer["NodeNames"]) == ["node-a", "node-b"] and not answer["Error"]
