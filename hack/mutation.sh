#!/usr/bin/env bash
# make mutation: mutmut over the core, in a scratch copy of the tree, then the score and every survivor.
#
# The core is policy/ (the engine, accounting, sizing, versions, record, quantities), the fleet
# controller's decision (controller/plan.py, containers.py, queue.py) and the
# comparisons the servers make on input (extender/scoring.py, extender/accounting.py,
# webhook/review.py); the configuration is [tool.mutmut] in pyproject.toml. Each mutant runs
# only the unit tests that cover the code it changed (mutmut's own selection), with the
# hypothesis profile "mutation" (tests/conftest.py). It takes long on 2 cores: it is not part
# of `make test`. Set MUTATION_ONLY="policy.budget.* policy.qos.*" (mutant name globs) to run a part.
# Survivors that are equivalent (no test can tell them from the code) are listed, each with its
# reason, in hack/mutation_equivalent.txt; the report leaves them out of the score and prints them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$here/.venv"
scratch="${MUTATION_DIR:-$HOME/.cache/meshfit/mutation}"
mkdir -p "$scratch"
rsync -a --delete --exclude .git --exclude .venv --exclude mutants --exclude '.hypothesis' --exclude build \
      --exclude '__pycache__' --exclude '*.so' "$here/" "$scratch/tree/"
cd "$scratch/tree"
export PATH="$venv/bin:$PATH"  # type_check_command runs the project's mypy
start=$(date +%s)
# shellcheck disable=SC2086  # MUTATION_ONLY is a list of globs
"$venv/bin/mutmut" run --max-children "${MUTATION_JOBS:-2}" ${MUTATION_ONLY:-} || true
end=$(date +%s)
"$venv/bin/python" "$here/hack/mutation_report.py" --seconds $((end - start)) ${MUTATION_DIFFS:+--diffs}
