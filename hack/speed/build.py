"""make speed: the injection engine's hot modules compiled with mypyc, beside their sources.

The webhook's cost per pod is the engine's (``policy.inject.inject``): plain
Python over plain dicts, which mypyc — the compiler mypy ships — turns into C
extension modules from the same typed sources, about 1.6 times faster with
byte-for-byte the same output (tests/golden, tests/policy and tests/webhook
prove it against whichever is installed). It is optional: without it the
``.py`` modules are imported, as on a fresh clone, in the wheel and in the
image.

Python imports an extension module before the ``.py`` of the same name, so a
compiled module that is older than its source would hide every later edit.
The build records each source's hash in build/mypyc/sources.json, and the test
suite refuses to run while any compiled module's source has changed since
(tests/conftest.py); ``make pure`` removes the compiled modules.

Needs a C compiler and the Python headers (Debian: gcc, python3-dev); mypy
comes with the venv's ``lint`` extra.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "mypyc"
STAMP = BUILD / "sources.json"

#: What one admission runs: the engine and everything it calls per pod. The policy
#: model and its loader stay Python (built once per policy edit, and tests replace() them).
MODULES = (
    "policy/annotations.py", "policy/budget.py", "policy/decision.py", "policy/donation.py", "policy/edits.py",
    "policy/inject.py", "policy/qos.py", "policy/quantity.py", "policy/record.py", "policy/resources.py",
    "policy/sidecar_build.py", "policy/sidecar_status.py", "policy/sizing.py", "policy/slots.py",
    "policy/versions.py",
)


#: mypyc's runtime shared by the compiled modules: ``meshfit_engine__mypyc.*.so`` at the top of the tree.
GROUP = "meshfit_engine"


def source_hashes() -> dict[str, str]:
    return {m: hashlib.sha256((REPO / m).read_bytes()).hexdigest() for m in MODULES}


def compiled() -> list[Path]:
    """The compiled modules present in the tree (and mypyc's shared runtime module)."""
    return sorted(p for p in (*(REPO / "policy").glob("*.so"), *REPO.glob(f"{GROUP}__mypyc*.so")))


def remove() -> None:
    for path in compiled():
        path.unlink()
    STAMP.unlink(missing_ok=True)


def main() -> int:
    from mypyc.build import mypycify
    from setuptools import Distribution

    remove()
    BUILD.mkdir(parents=True, exist_ok=True)
    # The project's mypy configuration names every package; here only these modules are
    # compiled, and mypyc counts the note about the unused sections as an error.
    extensions = mypycify(["--no-warn-unused-configs", *MODULES], opt_level="3", target_dir=str(BUILD / "c"),
                          group_name=GROUP)
    # A bare Distribution: setup() would read the project's own pyproject.toml, which is the wheel's.
    dist = Distribution({"name": "meshfit-engine", "ext_modules": extensions})
    build_ext = dist.get_command_obj("build_ext")
    build_ext.inplace = True
    build_ext.build_temp = str(BUILD / "temp")
    build_ext.build_lib = str(BUILD / "lib")
    build_ext.parallel = os.cpu_count() or 1
    dist.run_command("build_ext")
    STAMP.write_text(json.dumps(source_hashes(), indent=1, sort_keys=True) + "\n")
    print(f"compiled {len(MODULES)} modules of policy/ with mypyc; `make pure` removes them")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    if sys.argv[1:] == ["--remove"]:
        remove()
        sys.exit(0)
    sys.exit(main())
