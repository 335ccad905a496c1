"""The mutation score of `make mutation`, and every survivor, from mutmut's results.

Run by hack/mutation.sh inside the scratch tree. Killed, timed-out,
suspicious and crashed mutants count as caught. A mutant no test reaches ("no tests") is
not caught: it counts against the score like a survivor and is listed with
them. A survivor named in hack/mutation_equivalent.txt (one mutant name a
line, then its reason) is a change no test can observe: it is left out of the
score and printed with its reason, so the list is read, not trusted blindly.
Entries that no longer name a surviving mutant of a module that was run are
printed as stale (mutant numbers move when a function changes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

#: What mutmut calls a mutant the tests caught (a crash or a CPU-limit kill is caught too).
CAUGHT = ("killed", "timeout", "suspicious", "segfault", "caught by type check")
EQUIVALENT = Path(__file__).resolve().with_name("mutation_equivalent.txt")


def read_equivalent(path: Path) -> dict[str, str]:
    """Mutant name -> why it is equivalent, from ``path`` (``#`` starts a comment line)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        out[name] = reason.strip()
    return out


def module_of(name: str) -> str:
    return name.split(".x_")[0].split(".xǁ")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    parser.add_argument("--equivalent", type=Path, default=EQUIVALENT)
    args = parser.parse_args()
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                         text=True, check=False).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and name:
            status[name] = state.strip()
    equivalent = read_equivalent(args.equivalent)
    explained = {n for n, s in status.items() if s == "survived" and n in equivalent}
    counts = Counter(status.values())
    caught = sum(counts[k] for k in CAUGHT)
    missed = counts["survived"] - len(explained) + counts["no tests"]
    judged = caught + missed
    if not judged:
        print("\nmutation testing judged no mutant: the clean test run failed (see above)")
        return 1
    score = 100.0 * caught / judged
    print(f"\nmutation score: {score:.1f}% ({caught} of {judged} caught; "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; {len(explained)} survivors explained as equivalent, left out) in {args.seconds} s")
    by_module: dict[str, Counter[str]] = {}
    for name, state in status.items():
        key = "equivalent" if name in explained else state
        by_module.setdefault(module_of(name), Counter())[key] += 1
    for module in sorted(by_module):
        c = by_module[module]
        m_caught = sum(c[k] for k in CAUGHT)
        m_judged = m_caught + c["survived"] + c["no tests"]
        m_score = f"{100.0 * m_caught / m_judged:5.1f}%" if m_judged else "  -  "
        print(f"  {module:<32} {sum(c.values()):>5} mutants  {m_score}  {c['survived']:>4} survived"
              f"  {c['no tests']:>4} no tests  {c['equivalent']:>4} equivalent  {c['not checked']:>5} not run")
    survivors = sorted(n for n, s in status.items() if s in ("survived", "no tests") and n not in explained)
    if survivors:
        print("\nsurvivors (and mutants no test reaches):")
        for name in survivors:
            print(f"  {name}{'  (no tests)' if status[name] == 'no tests' else ''}")
            if args.diffs:
                diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True,
                                      check=False).stdout
                print("    " + "\n    ".join(diff.splitlines()))
    if explained:
        print("\nexplained as equivalent (hack/mutation_equivalent.txt):")
        for name in sorted(explained):
            print(f"  {name}: {equivalent[name]}")
    run_modules = {module_of(n) for n, s in status.items() if s != "not checked"}
    stale = sorted(n for n in equivalent if module_of(n) in run_modules and status.get(n) != "survived")
    if stale:
        print("\nstale entries in hack/mutation_equivalent.txt (not a survivor now; remove or renumber):")
        for name in stale:
            print(f"  {name}: {status.get(name, 'no such mutant')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
