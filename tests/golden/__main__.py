"""``python -m tests.golden [--update]``: check the golden files, or regenerate them and show the diff.

``make golden`` runs it with ``--update``. Without it, the exit status is 1
when the engine's output no longer means what a golden file says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import golden_cases  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the expected files and print what changed")
    args = parser.parse_args()
    if args.update:
        changed = 0
        for name, diff in golden_cases.update():
            changed += 1
            sys.stdout.write(diff if diff.endswith("\n") else diff + "\n")
            print(f"--- {name}: updated")
        total = len(golden_cases.cases())
        print(f"{changed} of {total} golden file(s) changed meaning; review with `git diff tests/golden/expected`"
              if changed else f"all {total} golden files unchanged")
        return 0
    failed = 0
    for case in golden_cases.cases():
        diff = golden_cases.differences(case)
        if diff:
            failed += 1
            sys.stdout.write(diff if diff.endswith("\n") else diff + "\n")
    print(f"{failed} golden file(s) differ: `make golden` regenerates them" if failed else "golden files match")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
