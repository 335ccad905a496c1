"""The floor of every benchmark that reads a fleet: a bare client paging through a LIST and decoding it.

    python -m bench.list_floor --kubeconfig FILE [--path /api/v1/pods ...]

A fresh process with meshfit's :class:`kube.client.ApiClient` and
:func:`kube.pages.list_pages` (the requests every meshfit reader sends: pages
of 500, each decoded by orjson), keeping nothing: what reading the fleet
costs before anyone does anything with it. Prints one JSON line: seconds in
the listing itself, items, peak resident memory.

:mod:`bench.fleet` measures ``meshfit fleet`` against the pod LIST;
:mod:`bench.extender_bench` measures the extender's initial cache build
against the node and pod LISTs it sends, timed like the build, from the
process's start.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def paged_list(kubeconfig: str, paths: list[str], *, collect: bool = True) -> dict[str, Any]:
    """Page through each of ``paths`` in turn, decoding every page; keep only the count.

    ``collect=False`` turns the cyclic garbage collector off for the listing, as
    the extender does for its initial LIST (:mod:`extender.feed`): a page decodes
    into tens of thousands of dicts, none cyclic, and collections scanning them
    are no part of reading the fleet. The extender's floor mirrors that setting;
    ``meshfit fleet`` leaves the collector on, and so does its floor.
    """
    import gc

    from kube.client import ApiClient
    from kube.config import load_config
    from kube.pages import list_pages

    started = time.perf_counter()
    items = 0
    if not collect:
        gc.disable()
    try:
        async with ApiClient(load_config(kubeconfig), timeout=120.0) as client:
            for path in paths:
                async for page in list_pages(client, path):
                    items += len(page)
    finally:
        gc.enable()
    return {"seconds": time.perf_counter() - started, "items": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--path", action="append", dest="paths", help="a LIST path (repeatable; default the pods)")
    parser.add_argument("--no-gc", action="store_true", help="the cyclic garbage collector off while listing")
    args = parser.parse_args()
    from cli.event_loop import run

    result = run(paged_list(args.kubeconfig, args.paths or ["/api/v1/pods"], collect=not args.no_gc))
    result["seconds_since_start"] = time.perf_counter() - STARTED
    result["peak_rss_mib"] = round(peak_mib(), 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
