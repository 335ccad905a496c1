"""Slow clients cannot starve the webhook: 2,000 slow connections, and real reviews still answered.

``meshfit webhook serve`` runs as a process with its shipped defaults (header
timeout 10 s, connection cap 1,000). An attacker on loopback keeps 2,000
connections open for the whole run, reopening each one the webhook drops:
half finish the TLS handshake and then trickle header bytes, half never
send a ClientHello. Meanwhile a client sends real AdmissionReviews; at least
99% of them must be answered, each within the latency bound, and the
webhook's file descriptors and resident memory must stay bounded. Bounded in
count and time: 2,000 connections for 12 s.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from webhook_samples import pod_shapes, review

from certs.generate import generate

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"serving https://127\.0\.0\.1:(\d+)/mutate")
SLOW_CONNECTIONS = 2000
ATTACK_SECONDS = 12.0
REVIEWS_PER_SECOND = 40
LATENCY_BOUND = 2.0


def process_figures(pid: int) -> tuple[float, float, int]:
    """VmRSS and VmHWM in MiB, and the number of open file descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"^VmHWM:\s+(\d+)", status, re.M).group(1)) / 1024  # type: ignore[union-attr]
    return rss, hwm, len(os.listdir(f"/proc/{pid}/fd"))


async def test_reviews_are_answered_throughout_a_slowloris_attack(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    generate(certs, service="meshfit-webhook", namespace="meshfit-system", ips=["127.0.0.1"])
    client_ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", "webhook", "serve", "--cert-dir", str(certs),
        "--policy", str(REPO / "manifests" / "policy.yaml"), "--port", "0", "--log-level", "info",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    assert proc.stderr is not None
    try:
        port = None
        while port is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert line, "webhook exited early"
            if match := LISTENING.search(line):
                port = int(match.group(1))
        drain = asyncio.create_task(proc.stderr.read())
        _, _, fds_at_start = process_figures(proc.pid)

        until = time.monotonic() + ATTACK_SECONDS
        attacker = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("slowloris_attacker.py")), str(port),
            str(certs / "ca.crt"), str(SLOW_CONNECTIONS), str(ATTACK_SECONDS),
            stdout=asyncio.subprocess.PIPE,
        )
        samples: list[tuple[float, float, int]] = []

        async def watch() -> None:
            while time.monotonic() < until:
                samples.append(process_figures(proc.pid))
                await asyncio.sleep(0.5)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(3.0)  # let the attack build up to the cap first

        body = orjson.dumps(review(pod_shapes()["burstable"]))
        latencies: list[float] = []
        failures: list[str] = []
        connector = aiohttp.TCPConnector(ssl=client_ctx, limit=8)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> None:
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"https://127.0.0.1:{port}/mutate", data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=LATENCY_BOUND),
                    ) as response:
                        answer = await response.json()
                        assert response.status == 200 and answer["response"]["allowed"]
                    latencies.append(time.perf_counter() - started)
                except (aiohttp.ClientError, asyncio.TimeoutError, AssertionError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

            sent = []
            while time.monotonic() < until - 1.0:
                sent.append(asyncio.create_task(one()))
                await asyncio.sleep(1 / REVIEWS_PER_SECOND)
            await asyncio.gather(*sent)
        out, _ = await asyncio.wait_for(attacker.communicate(), 60)
        opened = int(out.decode().strip() or 0)
        await watcher
        await asyncio.sleep(0.5)
        _, hwm, fds_after = process_figures(proc.pid)

        total = len(latencies) + len(failures)
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]
        max_rss = max(s[0] for s in samples)
        max_fds = max(s[2] for s in samples)
        print(f"\nslowloris: {SLOW_CONNECTIONS} slow connections held for {ATTACK_SECONDS:g}s "
              f"({opened} connections opened in all)")
        print(f"reviews: {len(latencies)}/{total} answered ({100 * len(latencies) / total:.1f}%), "
              f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
        print(f"webhook: fds {fds_at_start} at start, max {max_fds} under attack, {fds_after} after; "
              f"RSS max {max_rss:.0f} MiB, peak (VmHWM) {hwm:.0f} MiB")
        if failures:
            print("failures:", failures[:5])
        assert total >= 250
        assert len(latencies) >= 0.99 * total, failures[:5]
        assert max_fds <= 1000 + fds_at_start + 16, "the connection cap bounds the file descriptors"
        assert hwm < 256, "within the Deployment's memory limit"
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        log = (await drain).decode(errors="replace")
        assert "Traceback" not in log, log[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
