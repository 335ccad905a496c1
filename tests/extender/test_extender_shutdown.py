"""``meshfit extender serve`` as a process: SIGTERM stops accepting, finishes the call in flight, exits 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import orjson
import yaml
from extender_shapes import POLICY_FILE, app_pod, bound, meshed, node

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


async def _get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    raw = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def _in_flight(port: int) -> int:
    _, text = await _get(port, "/metrics")
    match = re.search(r"^meshfit_extender_requests_in_flight (\d+)$", text, re.M)
    assert match, text[:500]
    return int(match.group(1))


async def test_sigterm_finishes_the_call_in_flight_and_exits_0(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot.yaml"
    snapshot.write_text(yaml.safe_dump_all([
        node("node-a", "8", "16Gi"), node("node-b", "8", "16Gi"),
        bound(meshed(app_pod("api-0", "2", "4Gi")), "node-a"),
    ]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "extender", "serve", "--snapshot", str(snapshot), "--policy", str(POLICY_FILE),
        "--port", "0", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
    )
    assert proc.stderr is not None
    log = bytearray()
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, f"the extender exited early: {log.decode()}"
            log += line
            if match := LISTENING.search(line):
                port = int(match.group(1))

        async def drain() -> None:
            while line := await proc.stderr.readline():
                log.extend(line)

        drainer = asyncio.create_task(drain())
        pod = meshed(app_pod("web-0", "1", "2Gi"))
        body = orjson.dumps({"Pod": pod, "NodeNames": ["node-a", "node-b"]})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /filter HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:50]
        )
        await writer.drain()
        for _ in range(200):
            if await _in_flight(port) == 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the call never became in flight")

        proc.send_signal(signal.SIGTERM)
        # The listener closes while the call's body is still being read.
        for _ in range(200):
            try:
                _, probe = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
                probe.close()
            except (ConnectionRefusedError, ConnectionResetError, OSError, asyncio.TimeoutError):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("still accepting connections after SIGTERM")
        assert proc.returncode is None, "exited with a call in flight"

        writer.write(body[50:])
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 20)
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        answer = orjson.loads(payload)
        assert sorted(answer["NodeNames"]) == ["node-a", "node-b"] and not answer["Error"]
        writer.close()

        assert await asyncio.wait_for(proc.wait(), 20) == 0, log.decode()
        await drainer
        assert b"stopped" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
