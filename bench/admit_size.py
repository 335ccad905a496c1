"""Benchmark 9: the engine's cost against pod size, against the cost of reading and writing the same bytes.

    python -m bench.admit_size [--envs 1,10,100,1500] [--containers 1,5,20,50] [--rounds 7] [--seconds 0.25]

In process, with the shipped policy and an opted-in namespace, for every
shape of a grid (env vars per app container x app containers), each review
a distinct pod (own name, uid, label): the webhook's own work between a
request body and its answer, :func:`webhook.review.parse_review` then
:func:`webhook.mutate.admit` with an answer cache as the server keeps one
(it never hits: every review is distinct, checked), against the floor of
that work, ``orjson.loads`` then ``orjson.dumps`` of the same body (orjson
is what the webhook decodes and encodes with), repeated over the bodies so
its window is a quarter of the engine's at least. Only those two public calls
are made, so the table holds for any engine behind them.

The target is that the engine grows no faster than the bytes it must parse:
the ratio engine / floor of a shape must not grow with the body. The check:
for every two shapes whose bodies differ by 4x or more, the larger's ratio
is at most 1.1x the smaller's (the figure reported is the worst such
quotient). Fixed costs make small pods' ratios high, so in practice the check
bites among the large shapes, where a cost per env var or per container
growing faster than its bytes would show. The log-log slopes of engine and
floor time against body size over the shapes of 64 KB and more are reported
beside it.

Floor and engine are measured in turn for each shape, the order swapped every
other round, and each round's ratio taken; the median round is reported.
"""

from __future__ import annotations

import copy
import gc
import itertools
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import command
from bench.pods import distinct, java_pod, review
from bench.report import REPO, Report, write
from policy.inject import Namespace
from policy.load import load_policy_file
from policy.model import Policy
from webhook.answer_cache import AnswerCache
from webhook.mutate import INJECTED, admit
from webhook.review import parse_review

POLICY = REPO / "manifests" / "policy.yaml"
OPTED_IN = Namespace("bench", {"meshfit.io/inject": "enabled"}, None)
#: Two shapes at least this far apart in body size are compared ...
SIZE_STEP = 4.0
#: ... and the larger's engine / floor ratio may be at most this times the smaller's.
GROWTH_TARGET = 1.1
#: Shapes at least this large are fitted for the slopes (smaller ones are fixed cost).
SLOPE_FROM_BYTES = 64 * 1024


def shape_pod(envs: int, containers: int) -> dict[str, Any]:
    """The typical Java pod with ``containers`` app containers of ``envs`` env vars each.

    The first container is the Java app (ports, probes); the others are
    copies of it without ports, so no two containers claim one port.
    """
    pod = java_pod("wide-7b6c5d4e3-pqrst")
    app = pod["spec"]["containers"][0]
    app["env"] = [{"name": f"SETTING_{i:05d}", "value": "x" * 40} for i in range(envs)]
    rest = []
    for i in range(1, containers):
        other = copy.deepcopy(app)
        other["name"] = f"app-{i}"
        for key in ("ports", "readinessProbe", "livenessProbe"):
            other.pop(key, None)
        rest.append(other)
    pod["spec"]["containers"] = [app, *rest]
    return pod


def bodies_of(pod: dict[str, Any], count: int) -> list[bytes]:
    return [orjson.dumps(review(distinct(pod, i))) for i in range(count)]


def time_floor(bodies: list[bytes], passes: int = 1) -> float:
    """Seconds per body to decode and encode it again (over ``passes`` passes, so the window is not tiny)."""
    loads, dumps = orjson.loads, orjson.dumps
    gc.collect()
    started = time.perf_counter()
    for _ in range(passes):
        for body in bodies:
            dumps(loads(body))
    return (time.perf_counter() - started) / (len(bodies) * passes)


def time_engine(bodies: list[bytes], policy: Policy) -> tuple[float, float]:
    """(seconds per body in parse_review, in admit), every review injected and none from the cache."""
    cache = AnswerCache()
    resolve = lambda name: OPTED_IN  # noqa: E731 - the namespace the server would resolve
    parse_seconds = admit_seconds = 0.0
    gc.collect()
    for body in bodies:
        t0 = time.perf_counter()
        parsed = parse_review(body)
        t1 = time.perf_counter()
        outcome = admit(parsed, policy, resolve, cache)
        t2 = time.perf_counter()
        parse_seconds += t1 - t0
        admit_seconds += t2 - t1
        if outcome.result != INJECTED or outcome.cached:
            raise RuntimeError(f"the benchmark pod was {outcome.result} (cached {outcome.cached}): {outcome.error}")
    if cache.hits:
        raise RuntimeError(f"the answer cache answered {cache.hits} distinct reviews")
    return parse_seconds / len(bodies), admit_seconds / len(bodies)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def run(envs: str = "1,10,100,1500", containers: str = "1,5,20,50", rounds: int = 7, seconds: float = 0.25,
        out_dir: Path | None = None, log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("admit_size", "Benchmark 9: the engine's cost against pod size, against orjson of the same body")
    policy = load_policy_file(POLICY)
    shapes = list(itertools.product(_ints(envs), _ints(containers)))
    report.parameters = {"env_vars_per_app_container": _ints(envs), "app_containers": _ints(containers),
                         "rounds": rounds, "seconds_per_measurement": seconds, "policy": "manifests/policy.yaml",
                         "engine": "webhook.review.parse_review + webhook.mutate.admit (answer cache, no hits)",
                         "floor": "orjson.loads + orjson.dumps of the same body"}
    log("admit_size: writing request bodies ...")
    bodies: dict[tuple[int, int], list[bytes]] = {}
    passes: dict[tuple[int, int], int] = {}
    for shape in shapes:
        pod = shape_pod(*shape)
        few = bodies_of(pod, 3)
        time_engine(few[:1], policy)  # warm: imports, policy caches
        # The quickest of three: a shared machine only ever makes one slower.
        per_review = min(sum(time_engine([body], policy)) for body in few)
        count = max(3, min(400, math.ceil(seconds / per_review)))
        bodies[shape] = bodies_of(pod, count)
        # The floor is far quicker: enough passes over the same bodies for a window a quarter as long.
        per_floor = min(time_floor([body]) for body in few)
        passes[shape] = max(1, math.ceil(seconds / 4 / (count * per_floor)))
    samples: dict[tuple[int, int], list[dict[str, float]]] = {s: [] for s in shapes}
    for r in range(rounds):
        for shape in shapes if r % 2 == 0 else list(reversed(shapes)):
            floor_first = r % 2 == 0
            floor = time_floor(bodies[shape], passes[shape]) if floor_first else 0.0
            parse, admitted = time_engine(bodies[shape], policy)
            if not floor_first:
                floor = time_floor(bodies[shape], passes[shape])
            samples[shape].append({"floor_us": floor * 1e6, "parse_us": parse * 1e6, "admit_us": admitted * 1e6,
                                   "engine_us": (parse + admitted) * 1e6})
        log(f"  round {r + 1}/{rounds} done")
    _summarise(report, shapes, bodies, samples)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _summarise(report: Report, shapes: list[tuple[int, int]], bodies: dict[tuple[int, int], list[bytes]],
               samples: dict[tuple[int, int], list[dict[str, float]]]) -> None:
    ratio: dict[tuple[int, int], float] = {}
    size: dict[tuple[int, int], int] = {}
    medians: dict[tuple[int, int], dict[str, float]] = {}
    for shape in shapes:
        rows = samples[shape]
        size[shape] = len(bodies[shape][0])
        medians[shape] = {k: statistics.median(s[k] for s in rows) for k in rows[0]}
        ratio[shape] = statistics.median(s["engine_us"] / s["floor_us"] for s in rows)
    for shape in sorted(shapes, key=lambda s: size[s]):
        kb = size[shape] / 1024
        m = medians[shape]
        report.rows.append({
            "env/container": shape[0], "containers": shape[1], "body KB": round(kb, 1),
            "reviews": len(bodies[shape]), "engine us": round(m["engine_us"]), "engine us/KB": round(m["engine_us"] / kb, 2),
            "parse us": round(m["parse_us"]), "admit us": round(m["admit_us"]),
            "floor us": round(m["floor_us"]), "floor us/KB": round(m["floor_us"] / kb, 2),
            "x floor": round(ratio[shape], 2),
        })
    worst, pair = 0.0, None
    for small, large in itertools.permutations(shapes, 2):
        if size[large] >= SIZE_STEP * size[small] and ratio[large] / ratio[small] > worst:
            worst, pair = ratio[large] / ratio[small], (small, large)
    if pair is None:  # a grid too small to compare (a smoke run): nothing grew
        worst = 0.0
        note = f"no two shapes {SIZE_STEP:g}x apart in size"
    else:
        small, large = pair
        note = (f"worst: {large[0]} env x {large[1]} containers ({size[large] / 1024:.0f} KB) at "
                f"{ratio[large]:.2f}x floor vs {small[0]} x {small[1]} ({size[small] / 1024:.0f} KB) at "
                f"{ratio[small]:.2f}x")
    report.target(f"engine / floor ratio, a pod {SIZE_STEP:g}x larger against a smaller",
                  f"<= {GROWTH_TARGET}x the smaller's", worst, "x", worst <= GROWTH_TARGET, note)
    large_shapes = [s for s in shapes if size[s] >= SLOPE_FROM_BYTES]
    if len(large_shapes) >= 3:
        engine_slope = _slope([size[s] for s in large_shapes], [medians[s]["engine_us"] for s in large_shapes])
        floor_slope = _slope([size[s] for s in large_shapes], [medians[s]["floor_us"] for s in large_shapes])
        report.details["slopes"] = {"engine": round(engine_slope, 3), "floor": round(floor_slope, 3),
                                    "shapes": len(large_shapes)}
        report.notes.append(f"log-log slope against body size, {len(large_shapes)} shapes >= "
                            f"{SLOPE_FROM_BYTES // 1024} KB: engine {engine_slope:.2f}, floor {floor_slope:.2f} "
                            "(1 = linear)")
    report.details["rounds"] = {f"{e} env x {c} containers": samples[(e, c)] for e, c in shapes}


def _slope(xs: list[int], ys: list[float]) -> float:
    """Least-squares slope of log(y) on log(x)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(envs="1,10", containers="1,5", rounds=1, seconds=0.01)


def main() -> None:
    command.main(run, QUICK, __doc__, {"envs": "env vars per app container, comma-separated",
                                       "containers": "app containers, comma-separated", "rounds": "",
                                       "seconds": "per engine measurement"})


if __name__ == "__main__":
    main()
