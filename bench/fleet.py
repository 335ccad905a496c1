"""Benchmark 7: ``meshfit fleet`` on the extender benchmark's fleet, against a bare client paging the same LIST.

    python -m bench.fleet [--nodes 10000] [--pods 250000] [--rounds 2] [--quick]

The fleet is :class:`bench.extender_bench.Fleet` (realistic ~6 KB pods: meshfit
pods injected by the real engine, Istio pods, plain pods, with managedFields and
status) behind the same loopback LIST server, paginated by 500. Each round runs,
interleaved, each in a fresh process:

* the **floor**: a bare :class:`kube.client.ApiClient` paging through the pod
  LIST with :func:`kube.pages.list_pages` and decoding every page, nothing else
  (:mod:`bench.list_floor`);
* **meshfit fleet --by zone,app -o json**: the command's own code
  (:func:`cli.fleet_cmd.collect` and its JSON), LISTs of nodes, namespaces and
  namespace policies included.

Reported: wall time and peak resident memory of each, and fleet's time as a
multiple of the floor measured in the same run. In this fleet every container
status reports one placeholder image, so every meshed pod disagrees: the
slowest path through the fold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import command
from bench.list_floor import paged_list, peak_mib
from bench.report import Report, write

ROOT = Path(__file__).resolve().parents[1]
EXTENDER_BENCH = ROOT / "bench" / "extender_bench.py"
POLICY_FILE = ROOT / "manifests" / "policy.yaml"
#: Targets: fleet within this multiple of the floor's time; peak memory within this.
RATIO = 2.0
PEAK_MB = 256.0


async def _floor(kubeconfig: str) -> dict[str, Any]:
    result = await paged_list(kubeconfig, ["/api/v1/pods"])
    return {"seconds": result["seconds"], "pods": result["items"]}


async def _fleet(kubeconfig: str) -> dict[str, Any]:
    import orjson

    from cli.fleet_cmd import as_json, collect
    from cli.fleet_source import open_client

    started = time.perf_counter()
    args = argparse.Namespace(kubeconfig=kubeconfig, policy=str(POLICY_FILE), policy_configmap=None, namespace=None,
                              page_size=500, output="json", by="zone,app", examples=20)
    view, facts = await collect(open_client(args), args)
    with open(os.devnull, "wb") as sink:
        sink.write(orjson.dumps(as_json(view, facts), option=orjson.OPT_INDENT_2))
    return {"seconds": time.perf_counter() - started, "pods": view.pods_seen, "meshed": view.pods_meshed,
            "disagreeing": view.pods_disagreeing, "cells": len(view.cells), "requests": facts.requests}


def _role(role: str, kubeconfig: str) -> None:
    from cli.event_loop import run as run_loop

    result = run_loop(_floor(kubeconfig) if role == "floor" else _fleet(kubeconfig))
    result["peak_rss_mib"] = round(peak_mib(), 1)
    print(json.dumps(result))


def _measure(role: str, kubeconfig: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.fleet", "--role", role, "--kubeconfig", str(kubeconfig)],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"{role} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(nodes: int = 10_000, pods: int = 250_000, rounds: int = 2, out_dir: Path | None = None) -> Report:
    started = time.monotonic()
    report = Report("fleet", "Benchmark 7: meshfit fleet on the extender benchmark's fleet")
    report.parameters = {"nodes": nodes, "pods": pods, "rounds": rounds, "page_size": 500, "by": "zone,app"}
    samples: dict[str, list[dict[str, Any]]] = {"floor": [], "fleet": []}
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, str(EXTENDER_BENCH), "--role", "apiserver", "--nodes", str(nodes),
                                   "--pods", str(pods), "--port-file", str(port_file)], cwd=ROOT)
        try:
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    raise RuntimeError("the fleet server died")
                time.sleep(0.1)
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "bench",
                "clusters": [{"name": "bench", "cluster": {"server": f"http://127.0.0.1:{port_file.read_text()}"}}],
                "users": [{"name": "bench", "user": {"token": "bench"}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
            }))
            for r in range(rounds):
                for role in ("floor", "fleet") if r % 2 == 0 else ("fleet", "floor"):
                    result = _measure(role, kubeconfig)
                    samples[role].append(result)
                    print(f"round {r + 1}: {role} {result['seconds']:.2f} s, peak {result['peak_rss_mib']:.0f} MiB",
                          flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    floor_s = statistics.median(s["seconds"] for s in samples["floor"])
    fleet_s = statistics.median(s["seconds"] for s in samples["fleet"])
    fleet_peak = max(s["peak_rss_mib"] for s in samples["fleet"])
    floor_peak = max(s["peak_rss_mib"] for s in samples["floor"])
    last = samples["fleet"][-1]
    for role in ("floor", "fleet"):
        for i, s in enumerate(samples[role]):
            report.rows.append({"round": i + 1, "what": role, "seconds": round(s["seconds"], 2),
                                "pods/s": round(s["pods"] / s["seconds"]), "peak MiB": s["peak_rss_mib"]})
    ratio = fleet_s / floor_s
    report.target(f"meshfit fleet time on {pods} pods, x the bare paged LIST", f"<= {RATIO:g}x floor", ratio, "x",
                  ratio <= RATIO, f"{fleet_s:.2f} s vs {floor_s:.2f} s (medians of {rounds})")
    report.target(f"meshfit fleet peak memory on {pods} pods", f"<= {PEAK_MB:g} MB", fleet_peak * 2**20 / 1e6, "MB",
                  fleet_peak * 2**20 / 1e6 <= PEAK_MB, f"floor's peak {floor_peak:.0f} MiB")
    report.details = {"samples": samples, "fleet": {k: last[k] for k in ("pods", "meshed", "disagreeing", "cells", "requests")}}
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(nodes=50, pods=2000, rounds=1)


def main() -> None:
    if "--role" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--role", choices=("floor", "fleet"), required=True)
        parser.add_argument("--kubeconfig", required=True)
        args = parser.parse_args()
        _role(args.role, args.kubeconfig)
        return
    command.main(run, QUICK, __doc__, {"nodes": "", "pods": "", "rounds": ""})


if __name__ == "__main__":
    main()
