"""Each benchmark, run at a tiny size, so none of them can rot between ``make bench`` runs.

These check that a benchmark runs end to end and writes results of the
expected shape with sane values; they assert no timing target (a CI machine
under load would fail them at random). The three that need a control plane
run on the session's ``local_cluster`` and are marked e2e; they confine
themselves to their own namespaces, tainted nodes and webhook configuration,
and restore the scheduler's extenders.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import (
    admit_size,
    extender_scale,
    fleet,
    pod_create,
    reaccount,
    rollout,
    scheduling,
    watch_throughput,
    webhook_floor,
    webhook_rss,
)
from bench.loadgen import binary
from controlplane.cluster import LocalCluster


def load(path: Path, name: str) -> dict[str, Any]:
    """The benchmark's JSON, checked for what every results file must carry."""
    data: dict[str, Any] = json.loads((path / f"{name}.json").read_text())
    assert data["benchmark"] == name
    for key in ("title", "date", "machine", "versions", "parameters", "targets", "rows"):
        assert key in data, key
    assert data["machine"]["cpus"] >= 1
    assert data["versions"]["python"] and data["versions"]["event_loop"] in ("uvloop", "asyncio")
    assert data["targets"], "a benchmark without targets"
    for target in data["targets"]:
        assert set(target) >= {"name", "goal", "measured", "unit", "met"}
        assert isinstance(target["met"], bool)
        assert math.isfinite(target["measured"]) and target["measured"] >= 0, target
    return data


@pytest.fixture(scope="module")
def loadgen() -> Path:
    if shutil.which("go") is None:
        try:
            return binary()  # built earlier
        except Exception:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("CI=true: the webhook benchmark's load generator needs Go, and there is none")
            pytest.skip("the webhook benchmark's load generator needs Go")
    return binary()


def test_webhook_floor(tmp_path: Path, loadgen: Path) -> None:
    webhook_floor.run(rounds=1, seconds=0.3, distinct_pods=30, rate_seconds=0.3, out_dir=tmp_path,
                      log=lambda line: None)
    data = load(tmp_path, "webhook_floor")
    rows = {(r["server"], r["pod"], r["pods"], r["load"]): r for r in data["rows"]}
    assert len(rows) == len(webhook_floor.THROUGHPUT) + len(webhook_floor.LATENCY)
    for row in rows.values():
        assert row["req/s"] > 0 and 0 < row["p50 ms"] <= row["p99 ms"]
    typical = rows[("meshfit", "typical", "distinct", "closed, c=8")]
    assert 0 < typical["x floor"] < 10
    assert [t["name"] for t in data["targets"]][0] == "typical pod throughput, distinct pods"


def test_admit_size(tmp_path: Path) -> None:
    admit_size.run(envs="1,100", containers="1,5", rounds=1, seconds=0.005, out_dir=tmp_path, log=lambda line: None)
    data = load(tmp_path, "admit_size")
    shapes = [(r["env/container"], r["containers"]) for r in data["rows"]]
    assert sorted(shapes) == [(1, 1), (1, 5), (100, 1), (100, 5)]
    sizes = [r["body KB"] for r in data["rows"]]
    assert sizes == sorted(sizes) and sizes[-1] > 4 * sizes[0]  # rows by body size; some shapes 4x apart
    for row in data["rows"]:
        assert row["reviews"] >= 3 and 0 < row["floor us"] and 0 < row["parse us"] + row["admit us"]
        assert row["x floor"] > 0
    (target,) = data["targets"]
    assert target["measured"] > 0 and "worst" in target["note"]


def test_webhook_rss(tmp_path: Path) -> None:
    webhook_rss.run(reviews=60, samples=3, concurrency=2, out_dir=tmp_path, log=lambda line: None)
    data = load(tmp_path, "webhook_rss")
    assert [r["reviews"] for r in data["rows"]] == [0, 20, 40, 60]
    assert all(10 < r["rss_mib"] <= r["peak_mib"] for r in data["rows"])
    assert [t["unit"] for t in data["targets"]] == ["MiB", "%"]
    assert data["details"]["answer_cache"]["hits"] == 0


def test_extender_scale(tmp_path: Path) -> None:
    extender_scale.run(nodes=30, pods=300, rounds=3, out_dir=tmp_path)
    data = load(tmp_path, "extender_scale")
    assert (tmp_path / "extender.json").exists()  # the extender bench's own report, beside ours
    assert len(data["targets"]) == 4
    assert {r["verb"] for r in data["rows"]} == {"filter", "prioritize"}
    assert all(r["p50 ms"] > 0 for r in data["rows"])
    build = data["details"]["extender_bench"]["build"]
    # The floor ran before and after the build, over every node and pod of the fleet.
    assert len(build["floor_seconds"]) == 2 and all(s > 0 for s in build["floor_seconds"])
    assert build["floor_items"] == 30 + 300
    (target,) = [t for t in data["targets"] if t["name"].startswith("initial cache build")]
    assert target["unit"] == "x" and target["measured"] == pytest.approx(build["x_floor"], abs=1e-3)


def test_fleet(tmp_path: Path) -> None:
    fleet.run(nodes=30, pods=600, rounds=1, out_dir=tmp_path)
    data = load(tmp_path, "fleet")
    assert [t["name"] for t in data["targets"]] == [
        "meshfit fleet time on 600 pods, x the bare paged LIST", "meshfit fleet peak memory on 600 pods"]
    assert {r["what"] for r in data["rows"]} == {"floor", "fleet"}
    seen = data["details"]["fleet"]
    assert seen["pods"] == 600 and 0 < seen["meshed"] < 600 and seen["cells"] > 0
    assert 0 < data["targets"][0]["measured"] < 20


@pytest.mark.e2e
def test_pod_create(tmp_path: Path, local_cluster: LocalCluster) -> None:
    pod_create.run(pods=6, rounds=2, concurrency=2, cluster=local_cluster, out_dir=tmp_path, log=lambda line: None)
    data = load(tmp_path, "pod_create")
    assert [r["configuration"] for r in data["rows"]] == list(pod_create.CONFIGS)
    assert all(r["pods"] == 6 and r["pods/s"] > 0 for r in data["rows"])
    assert data["rows"][0]["x no webhook"] == 1
    assert [t["name"] for t in data["targets"]][2] == "pod creation, webhook injecting"
    injecting = data["rows"][-1]
    assert injecting["configuration"] == pod_create.INJECT and 0 < injecting["x injecting floor"] < 10
    # The floor answers with meshfit's own answer for the shape: a patch, and the bytes of one.
    assert data["parameters"]["answer_bytes"] > 1000


@pytest.mark.e2e
def test_scheduling(tmp_path: Path, local_cluster: LocalCluster) -> None:
    before = local_cluster.extenders
    scheduling.run(nodes=3, pods=4, rounds=1, mixed_pods_total=10, cluster=local_cluster, out_dir=tmp_path,
                   timeout=120, log=lambda line: None)
    assert local_cluster.extenders == before
    data = load(tmp_path, "scheduling")
    configs = [*scheduling.MESHED_CONFIGS, *scheduling.MIXED_CONFIGS]
    assert [r["configuration"] for r in data["rows"]] == [c.name for c in configs]
    rows = {r["configuration"]: r for r in data["rows"]}
    assert all(rows[c.name]["bound"] == rows[c.name]["pods"] == 4 for c in scheduling.MESHED_CONFIGS)
    assert all(rows[c.name]["bound"] == rows[c.name]["pods"] == 10 for c in scheduling.MIXED_CONFIGS)
    # Three of every ten pods of the mixed fleet are meshed.
    assert all(r["meshed"] == 3 for r in data["details"]["rounds"] if r["configuration"].startswith("mixed"))
    assert set(data["details"]["verb_costs"]) == {"filter", "prioritize", "bind", "bind, without prioritize",
                                                  "prioritize, with bind"}
    assert [t["name"] for t in data["targets"]] == [
        "meshfit extender vs the no-op extender", "mixed fleet (30% meshed), second scheduler",
        "mixed fleet (30% meshed), managedResources"]


@pytest.mark.e2e
def test_watch_throughput(tmp_path: Path, local_cluster: LocalCluster) -> None:
    watch_throughput.run(pods=10, waves=1, nodes=2, cluster=local_cluster, out_dir=tmp_path, reference_rate=1.0,
                         log=lambda line: None)
    data = load(tmp_path, "watch_throughput")
    row = data["rows"][0]
    assert row["events emitted"] >= 20  # an ADDED and a DELETED per pod at least
    assert row["absorbed"] >= row["events emitted"]


@pytest.mark.e2e
def test_reaccount(tmp_path: Path, local_cluster: LocalCluster) -> None:
    reaccount.run(pods=12, qps=400.0, nodes=2, cluster=local_cluster, out_dir=tmp_path, log=lambda line: None)
    data = load(tmp_path, "reaccount")
    sizes = [row["pods"] for row in data["rows"]]
    assert sizes == [3, 12]
    for row in data["rows"]:
        assert row["changed"] == row["pods"], "every pod of the fleet is resized"
        assert row["writes/changed pod"] == 2
        assert row["client peak MB"] > 0


def test_rollout(tmp_path: Path) -> None:
    rollout.run(pods=200, rounds=1, out_dir=tmp_path)
    data = load(tmp_path, "rollout")
    (sample,) = data["details"]["samples"]["rollout"]
    # Every pod got its target once; six batches, each judged; one status write per reconcile at most.
    assert sample["calls"]["patch"] == 200 and sample["batches"] == 6
    assert sample["calls"]["status"] <= sample["reconciles"]
    assert {r["what"] for r in data["rows"]} == {"floor", "read", "rollout"}


def test_webhook_rss_summary_of_a_run_inside_the_clock_rounding() -> None:
    """A fast machine can finish a smoke run in under a millisecond; the summary must still be made."""
    from bench.report import Report

    report = Report("webhook_rss", "t")
    points = [{"reviews": 0, "rss_mib": 50.0, "peak_mib": 50.0, "seconds": 0.0},
              {"reviews": 2, "rss_mib": 50.0, "peak_mib": 50.0, "seconds": 0.0}]
    webhook_rss._summarise(report, points, 2, 0.0, 2.0)
    assert [t.met for t in report.targets] == [True, True]
    assert not any("reviews/s" in n for n in report.notes)
    points[-1]["seconds"] = 0.5
    webhook_rss._summarise(report, points, 2, 0.0, 2.0)
    assert any(n.startswith("4 reviews/s") for n in report.notes)
