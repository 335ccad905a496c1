"""Every command shown in README.md and docs/*.md runs (or, needing a cluster or a build, parses) as shown.

The blocks read are ```console (a command is a line starting with ``$ ``; the
lines after it, up to the next command, are its output) and ```sh/```bash
(every line is a command). Offline ``meshfit`` commands run with the venv's
``meshfit``, in a temporary directory holding a copy of ``manifests/`` and the
few files the docs name; where output is shown, the output must match it
once ports, timestamps, durations, UIDs, IPs, serials and revisions are
normalised. Commands that need a cluster or a build cannot run here: each is
in :data:`PARSE_ONLY` with the reason, and its ``meshfit`` parts are checked
against :func:`cli.main.build_parser`. A command that is neither fails the test:
nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MESHFIT = Path(sys.executable).parent / "meshfit"

#: meshfit commands that run offline, by their first word(s).
OFFLINE = {"inject", "explain", "policy", "certs", "--version"}
OFFLINE_ACTIONS = {("extender", "simulate")}

#: Programs whose commands are checked for their syntax only, and why they cannot run here.
PARSE_ONLY = {
    "kubectl": "needs a cluster",
    "helm": "needs a cluster (and helm from make tools)",
    "make": "builds the control plane, the image or the suite: minutes, checked by CI itself",
    "skopeo": "pushes an image to a registry",
}
#: meshfit commands that need a cluster (or serve one), checked with build_parser only.
MESHFIT_CLUSTER = {
    "webhook": "serves until stopped", "extender": "serve: serves until stopped", "controller": "needs a cluster",
    "leak": "needs a cluster", "fleet": "needs a cluster", "check": "needs a cluster", "reaccount": "needs a cluster",
    "upgrade": "needs a cluster", "rollback": "needs a cluster", "restart": "needs a cluster",
    "activate": "needs a cluster", "deactivate": "needs a cluster", "resize": "needs a cluster",
    "rollout": "needs a cluster", "degrade": "needs a cluster",
    "demo": "builds and starts a control plane",
}
#: Cluster options make an offline command read a cluster: parse only.
CLUSTER_FLAGS = ("--policy-from-cluster", "--policy-configmap", "--context", "--kubeconfig")

#: Files the docs' commands name that the checkout does not have, made in the working directory.
FIXTURES = {
    "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n"
                "    - {name: app, image: registry.example.com/shop/web:1, resources: {requests: {cpu: 500m, memory: 512Mi}}}\n",
    "broken.yaml": "apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nsidecars:\n"
                   "  - {name: rpc-mesh, image: registry.corp.internal/mesh/mosn}\n"
                   "  - {name: msg-mesh, image: registry.corp.internal/mesh/msg-agent, sizing: {ratio: {cpu: '1.5'}}}\n"
                   "versions: {sidecars: {rpc-mesh: {baseline: 1.8.0}, msg-mesh: {baseline: 2.3.0}}}\n"
                   "emergency: {stopInjecton: true}\n",
}


@dataclass
class Command:
    doc: str
    line: int
    text: str
    shown: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def commands(path: Path) -> list[Command]:
    """The commands of one Markdown file, each with the output its block shows."""
    found: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    name = str(path.relative_to(ROOT))
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(console|sh|bash)\s*$", lines[i].strip())
        indent = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        if not fence:
            continue
        current: Command | None = None
        while i < len(lines) and lines[i].strip() != "```":
            raw = lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i]
            if fence.group(1) != "console" or raw.startswith("$ "):
                text = raw[2:] if raw.startswith("$ ") else raw
                start = i + 1
                while text.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text.rstrip()[:-1] + " " + lines[i].strip()
                if text.strip() and not text.strip().startswith("#"):
                    current = Command(name, start, text.strip())
                    found.append(current)
                else:
                    current = None
            elif current is not None:
                current.shown.append(raw)
            i += 1
        i += 1
    return found


ALL = [c for doc in DOCS for c in commands(doc)]


def _segments(text: str) -> list[list[str]]:
    """A shell line's pipeline as argv lists (comments, redirections and ``$(...)`` left out)."""
    text = re.sub(r"\s#\s.*$", "", text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|<>;&")
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
            continue
        if token in ("|", ";", "&&", "||"):
            out.append([])
        elif token in ("<", ">", ">>", "2>", "&>"):
            skip_next = True
        else:
            out[-1].append(token)
    return [s for s in out if s]


def _is_meshfit(argv: list[str]) -> bool:
    return Path(argv[0]).name == "meshfit"


def _runs_offline(argv: list[str]) -> bool:
    if not _is_meshfit(argv) or len(argv) < 2 or any(a.split("=")[0] in CLUSTER_FLAGS for a in argv):
        return False
    return argv[1] in OFFLINE or tuple(argv[1:3]) in OFFLINE_ACTIONS


def _reason(argv: list[str]) -> str | None:
    """Why a command is parse-only; ``None`` for a command this test does not know (a failure)."""
    if _is_meshfit(argv):
        if len(argv) > 1 and argv[1] in MESHFIT_CLUSTER:
            return MESHFIT_CLUSTER[argv[1]]
        if any(a.split("=")[0] in CLUSTER_FLAGS for a in argv):
            return "reads the policy from a cluster"
        return None
    program = argv[0]
    if program.startswith("$("):
        program = program[2:]
    return PARSE_ONLY.get(Path(program).name)


def _parses(argv: list[str]) -> None:
    """A meshfit argv is valid for build_parser (placeholders like K and FILE are fine values), in today's spelling."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        raise AssertionError(f"{' '.join(argv)} does not parse (exit {exc.code}): {err.getvalue()}") from None
    assert "deprecated" not in err.getvalue(), f"{' '.join(argv)}: {err.getvalue()}"


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?"), "TIMESTAMP"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UID"),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "IP"),
    (re.compile(r":\d{2,5}\b"), ":PORT"),
    (re.compile(r"\brevision [0-9a-f]{12}\b"), "revision REV"),
    (re.compile(r'"revision": "[0-9a-f]{12}"'), '"revision": "REV"'),
    (re.compile(r"\b(serial:?\s+)[0-9a-f]{16,}\b"), r"\1SERIAL"),
    (re.compile(r'("serial": "|serial: )[0-9a-f]{16,}'), r"\1SERIAL"),
    (re.compile(r"\b\d+(\.\d+)? days left\b"), "N days left"),
    (re.compile(r"(daysLeft:?\"?:?\s*)\d+(\.\d+)?"), r"\1N"),
    (re.compile(r"\b\d+(\.\d+)?(ms|s)\b"), "DURATION"),
]


def normalise(text: str) -> list[str]:
    lines = []
    for line in text.rstrip("\n").splitlines():
        for pattern, repl in NORMALISE:
            line = pattern.sub(repl, line)
        lines.append(line.rstrip())
    return lines


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory with what the docs' commands read: manifests/, the venv, the fixtures."""
    work = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "manifests", work / "manifests", ignore=shutil.ignore_patterns("generated"))
    (work / ".venv").mkdir()
    (work / ".venv" / "bin").symlink_to(MESHFIT.parent)
    for name, text in FIXTURES.items():
        (work / name).write_text(text)
    return work


def test_the_docs_have_commands() -> None:
    assert len(ALL) > 20
    assert {c.doc for c in ALL} >= {"README.md", "docs/install.md", "docs/cli.md", "docs/policy.md"}


@pytest.mark.parametrize("command", ALL, ids=[c.where for c in ALL])
def test_every_documented_command_runs_or_parses(command: Command, workdir: Path) -> None:
    segments = _segments(command.text)
    assert segments, f"{command.where}: no command in {command.text!r}"
    runnable = [s for s in segments if _runs_offline(s)]
    if len(runnable) < len(segments):
        for argv in segments:
            if _runs_offline(argv):
                _parses(argv)
                continue
            reason = _reason(argv)
            assert reason, (f"{command.where}: {' '.join(argv)!r} neither runs offline nor is in the parse-only "
                            "list: add it to PARSE_ONLY or MESHFIT_CLUSTER with the reason")
            if _is_meshfit(argv):
                _parses(argv)
            if argv[0] == "make":
                assert set(argv[1:]) <= _make_targets(), f"{command.where}: no such make target in {argv}"
        # The offline head of a pipeline into kubectl still runs.
        head = [s for s in segments[:1] if _runs_offline(s)]
        if head and len(segments) > 1:
            done = subprocess.run(shlex.join(head[0]), shell=True, cwd=workdir, capture_output=True, text=True,
                                  timeout=120, env={**os.environ, "PATH": f"{MESHFIT.parent}:{os.environ['PATH']}"})
            assert done.returncode == 0, f"{command.where}: {head[0]}: {done.stderr}"
        return
    env = {**os.environ, "PATH": f"{MESHFIT.parent}:{os.environ['PATH']}"}
    done = subprocess.run(command.text, shell=True, cwd=workdir, capture_output=True, text=True, timeout=120,
                          env=env)
    assert "deprecated" not in done.stderr, f"{command.where}: the docs use an old spelling: {done.stderr}"
    if command.shown:
        shown = "\n".join(command.shown)
        printed = done.stdout + (done.stderr if shown.lstrip().startswith("meshfit ") else "")
        assert normalise(printed) == normalise(shown), f"{command.where}: {command.text}\n{done.stderr}"
    else:
        assert done.returncode == 0, f"{command.where}: {command.text}: exit {done.returncode}\n{done.stderr}"


def test_the_parse_only_list_names_only_what_the_docs_use() -> None:
    used = {Path(s[0]).name for c in ALL for s in _segments(c.text) if not _is_meshfit(s)}
    assert set(PARSE_ONLY) <= used, set(PARSE_ONLY) - used
