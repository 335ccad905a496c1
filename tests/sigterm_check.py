"""A server run as a real process, stopped with SIGTERM while a request is half sent.

Every meshfit server runs the lifecycle of :mod:`serving.process`; this drives
it from outside, as a Deployment's rolling update does: the request still
being read when the signal arrives must be answered in full, the listener
must close meanwhile, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Answered:
    """What the half-sent request got, and the server's whole log."""

    head: bytes
    payload: bytes
    log: bytes


async def _in_flight(port: int, context: ssl.SSLContext | None, metric: str) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 10)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    text = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    match = re.search(rf"^{metric} (\d+)$", text, re.M)
    assert match, text[:500]
    return int(match.group(1))


async def sigterm_mid_request(
    argv: Sequence[str],
    *,
    listening: re.Pattern[bytes],
    path: str,
    body: bytes,
    in_flight_metric: str,
    context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    split: int = 100,
) -> Answered:
    """Start ``argv``, POST the first ``split`` bytes of ``body`` to ``path``, SIGTERM, then send the rest.

    ``listening`` finds the bound port (group 1) in the server's log.
    Asserts the lifecycle's promises; returns the answer for the caller's own checks.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    log = bytearray()
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(stderr.readline(), 30)
            assert line, f"server exited early: {log.decode()}"
            log += line
            if match := listening.search(line):
                port = int(match.group(1))

        async def drain() -> None:
            while line := await stderr.readline():
                log.extend(line)

        drainer = asyncio.create_task(drain())
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
            + b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:split]
        )
        await writer.drain()
        for _ in range(200):
            if await _in_flight(port, context, in_flight_metric) == 1:
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
        writer.write(body[split:])
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 20)
        head, _, payload = response.partition(b"\r\n\r\n")
        writer.close()

        assert await asyncio.wait_for(proc.wait(), 20) == 0, log.decode()
        await drainer
        assert b"stopped" in log
        return Answered(head, payload, bytes(log))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
