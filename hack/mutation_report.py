"""The mutation score of `make mutation`, and every survivor, from mutmut's results.

Run by hack/mutation.sh inside the scratch tree. Killed, timed-out and
suspicious mutants count as caught; survivors are listed by name with the
diff mutmut shows for them, so each can be killed by a test or explained as
equivalent in the README.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                         text=True, check=False).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name:
            status[name] = state.strip()
    counts = Counter(status.values())
    caught = counts["killed"] + counts["timeout"] + counts["suspicious"]
    judged = caught + counts["survived"]
    score = 100.0 * caught / judged if judged else 0.0
    by_file: Counter[str] = Counter()
    survived_by_file: Counter[str] = Counter()
    for name, state in status.items():
        module = name.split(".x_")[0].split(".xǁ")[0]
        by_file[module] += 1
        if state == "survived":
            survived_by_file[module] += 1
    if not judged:
        print("\nmutation testing judged no mutant: the clean test run failed (see above)")
        return 1
    print(f"\nmutation score: {score:.1f}% ({caught} of {judged} caught; "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f") in {args.seconds} s")
    for module in sorted(by_file):
        print(f"  {module:<32} {by_file[module]:>5} mutants  {survived_by_file[module]:>4} survived")
    survivors = sorted(n for n, s in status.items() if s == "survived")
    if survivors:
        print("\nsurvivors:")
        for name in survivors:
            print(f"  {name}")
            if args.diffs:
                diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True,
                                      check=False).stdout
                print("    " + "\n    ".join(diff.splitlines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
