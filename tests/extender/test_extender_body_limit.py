"""The extender's body limit: the largest real call passes, anything larger is 413 and costs no memory.

Run as a real process so its resident memory can be read from /proc: the
high-water mark (``VmHWM``) after 32 MiB and 200 MiB uploads, sent both with
a ``Content-Length`` and chunked (where only the bytes can tell), and after
the most expensive body that fits (8 MiB of tiny JSON objects) must stay far
below the Deployment's 768Mi limit. Each upload is bounded in time.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import orjson
import yaml
from extender_shapes import POLICY_FILE, app_pod, meshed, node

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")
MiB = 1024 * 1024


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match, status
    return int(match.group(1)) / 1024


async def upload(port: int, size: int, *, chunked: bool) -> tuple[bytes, float]:
    """POST ``size`` bytes of filler to /filter; the status line and the seconds it took."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % size
    writer.write(head)
    chunk = b"[" * (1 * MiB)
    sent = 0
    try:
        while sent < size:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            sent += len(chunk)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server answered and closed while the body was still going out
    try:
        status = (await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).strip()
    except (asyncio.IncompleteReadError, ConnectionError):
        status = b"(closed without an answer)"
    writer.close()
    return status, time.perf_counter() - started


async def test_oversize_calls_are_413_with_bounded_memory_and_the_largest_real_one_passes(tmp_path: Path) -> None:
    names = [f"node-{i:05d}.pool-{i % 50:02d}.zone-{i % 3}.cluster.example.com" for i in range(10_000)]
    snapshot = tmp_path / "snapshot.yaml"
    snapshot.write_text(yaml.safe_dump_all([node(names[0], "8", "16Gi"), node(names[1], "8", "16Gi")]))
    root = str(Path(__file__).resolve().parents[2])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "extender", "serve", "--snapshot", str(snapshot),
        "--policy", str(POLICY_FILE), "--port", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert proc.stderr is not None
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, "extender exited early"
            if match := LISTENING.search(line):
                port = int(match.group(1))
        baseline = peak_rss_mib(proc.pid)

        # The largest real call: a pod and 10,000 node names (nodeCacheCapable: true).
        pod = meshed(app_pod("web-0", "1", "2Gi"))
        pod["metadata"]["annotations"]["padding"] = "x" * (1 * MiB)  # a big pod as well
        real = orjson.dumps({"Pod": pod, "NodeNames": names})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(real), real))
        answer = await asyncio.wait_for(reader.read(), 20)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        print(f"largest real call: {len(real) / MiB:.1f} MiB, answered 200")

        results = {}
        for size in (32 * MiB, 200 * MiB):
            for chunked in (False, True):
                status, took = await upload(port, size, chunked=chunked)
                results[(size, chunked)] = (status, took)
                assert status.startswith(b"HTTP/1.1 413"), (size, chunked, status)
                assert took < 15, (size, chunked, took)
        after_uploads = peak_rss_mib(proc.pid)
        # 8 MiB of nothing but empty objects would decode to ~250 MiB: refused for its density.
        # The most expensive body that passes: as many containers as allowed, then short strings.
        dense = b"[" + b"{}," * (8 * MiB // 3 - 2) + b"{}]"
        containers = b"[]," * (8 * MiB // 32 - 2)
        strings = b'"ab",' * ((8 * MiB - len(containers) - 16) // 5)
        costly = b"[" + containers + strings + b'"ab"]'
        for body, expected in ((dense, b"HTTP/1.1 413"), (costly, b"HTTP/1.1 400")):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            answer = await asyncio.wait_for(reader.read(), 20)
            writer.close()
            assert answer.startswith(expected), answer[:200]
        peak = peak_rss_mib(proc.pid)
        for (size, chunked), (status, took) in results.items():
            print(f"{size // MiB} MiB {'chunked' if chunked else 'with Content-Length'}: "
                  f"{status.decode()} in {took:.2f}s")
        print(f"extender peak RSS: {baseline:.0f} MiB at start, {after_uploads:.0f} MiB after the real call and "
              f"the oversize uploads, {peak:.0f} MiB after the most expensive body under the limit")
        assert peak - baseline < 200, f"peak RSS grew by {peak - baseline:.0f} MiB"
        assert peak < 400
    finally:
        proc.terminate()
        await proc.wait()
