"""Copy the default policy from manifests/policy.yaml into the chart's values.yaml.

    python hack/chart/sync-policy.py          # rewrite charts/meshfit/values.yaml
    python hack/chart/sync-policy.py --check  # exit 1 if it would change (tests/chart runs this)

manifests/policy.yaml is the one source of the default policy; the chart carries
it as ``values.policy`` (a map, so ``--set policy.…`` and ``-f`` merge into it),
between the BEGIN and END markers, comments kept.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "manifests" / "policy.yaml"
VALUES = REPO / "charts" / "meshfit" / "values.yaml"
BLOCK = re.compile(r"(  # BEGIN manifests/policy\.yaml[^\n]*\n)(.*?)(  # END manifests/policy\.yaml)", re.S)


def policy_text() -> str:
    configmap = yaml.safe_load(SOURCE.read_text())
    return configmap["data"]["policy.yaml"]


def rendered(values: str) -> str:
    body = "".join(f"  {line}".rstrip() + "\n" for line in policy_text().splitlines())
    new, count = BLOCK.subn(lambda m: m.group(1) + body + m.group(3), values)
    if count != 1:
        raise SystemExit(f"{VALUES}: no BEGIN/END manifests/policy.yaml block")
    return new


def main() -> int:
    current = VALUES.read_text()
    new = rendered(current)
    if "--check" in sys.argv[1:]:
        if new != current:
            print(f"{VALUES.relative_to(REPO)} is out of date: run python hack/chart/sync-policy.py", file=sys.stderr)
            return 1
        return 0
    VALUES.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
