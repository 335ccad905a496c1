"""The command line every benchmark module shares: its sizes, ``--quick`` and ``--out``.

Each option is a keyword of the module's ``run()`` and takes its default from
there, so the command line can never disagree with what ``make bench`` runs.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.report import results_dir


def main(run: Callable[..., Any], quick: Mapping[str, Any], doc: str | None, options: Mapping[str, str]) -> None:
    """Parse ``options`` (keyword → help), then run full size, or ``quick`` with ``--quick``."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    defaults = {name: p.default for name, p in inspect.signature(run).parameters.items()}
    for name, help_text in options.items():
        default = defaults[name]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default,
                            help=f"{help_text} (default {default})".strip())
    parser.add_argument("--quick", action="store_true", help="a small size: a smoke run, not a measurement")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default bench/results; build/bench-quick with --quick)")
    args = parser.parse_args()
    sizes = dict(quick) if args.quick else {name: getattr(args, name) for name in options}
    run(**sizes, out_dir=results_dir(args.out, args.quick))
