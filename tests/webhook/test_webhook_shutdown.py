"""``meshfit webhook serve`` as a process: SIGTERM stops accepting, finishes what is in flight, exits 0."""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import sys
from pathlib import Path

import orjson
from webhook_server_helpers import client_context
from webhook_samples import pod_shapes, review

SERVING = re.compile(rb"serving https://127\.0\.0\.1:(\d+)/mutate")


def meshfit_command() -> list[str]:
    script = Path(sys.executable).parent / "meshfit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


async def in_flight(port: int, context: ssl.SSLContext) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 10)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    text = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    match = re.search(r"^meshfit_webhook_requests_in_flight (\d+)$", text, re.M)
    assert match, text[:500]
    return int(match.group(1))


async def test_sigterm_finishes_the_request_in_flight_and_exits_0(cert_dir: Path, policy_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *meshfit_command(), "webhook", "serve", "--cert-dir", str(cert_dir), "--policy", str(policy_path),
        "--port", "0", "--shutdown-timeout", "20",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = bytearray()
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert line, f"server exited early: {log.decode()}"
            log += line
            if match := SERVING.search(line):
                port = int(match.group(1))

        async def drain() -> None:
            while line := await proc.stderr.readline():
                log.extend(line)

        drainer = asyncio.create_task(drain())
        context = client_context(cert_dir / "ca.crt")
        doc = review(pod_shapes()["two-containers"], uid="in-flight")
        body = orjson.dumps(doc)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(
            b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:100]
        )
        await writer.drain()
        for _ in range(200):
            if await in_flight(port, context) == 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the request never became in flight")

        proc.send_signal(signal.SIGTERM)
        # The listener closes while the request is still being read.
        for _ in range(200):
            try:
                _, probe = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 2)
                probe.close()
            except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError, OSError, asyncio.TimeoutError):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("still accepting connections after SIGTERM")
        assert proc.returncode is None, "exited with a request in flight"

        assert not writer.is_closing(), log.decode()
        writer.write(body[100:])
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 20)
        head, _, payload = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        answer = orjson.loads(payload)
        assert answer["response"]["uid"] == "in-flight"
        assert answer["response"]["allowed"] is True and answer["response"]["patch"]
        writer.close()

        assert await asyncio.wait_for(proc.wait(), 20) == 0, log.decode()
        await drainer
        assert b"stopped" in log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
