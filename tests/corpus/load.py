"""The corpus of real manifests: every pod-bearing document, and where each file came from.

The files under ``manifests/`` are upstream YAML kept verbatim (see README.md);
this module only reads them. It is pure and needs nothing but PyYAML, so a
unit test, a property test or an end-to-end test can share the same pods.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS_DIR = Path(__file__).resolve().parent
MANIFESTS_DIR = CORPUS_DIR / "manifests"
SOURCES_FILE = CORPUS_DIR / "sources.yaml"
#: The RuntimeClasses the corpus pods name, as their upstream projects define them.
RUNTIME_CLASSES_DIR = CORPUS_DIR / "runtimeclasses"

#: The kinds the webhook and ``meshfit inject`` handle: a Pod or a pod template.
POD_BEARING_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})

#: Resource shapes a file can bring; README.md defines each one.
SHAPES = (
    "besteffort", "limits-only", "requests-only", "partial", "small", "guaranteed", "init", "init-heavy",
    "native-sidecar", "pod-level", "runtime-class", "yaml-number", "host-network", "many-containers", "job",
)


@dataclass(frozen=True)
class CorpusDocument:
    """One pod-bearing document of a corpus file, parsed as PyYAML reads it.

    ``obj`` keeps YAML numbers as numbers (``cpu: 0.5`` is a float), as the
    apiserver receives them from kubectl; do not mutate it, copy it.
    """

    file: str
    index: int
    kind: str
    name: str
    obj: dict[str, Any]

    @property
    def id(self) -> str:
        """``file#index``: stable across runs, usable as a pytest id."""
        return f"{self.file}#{self.index}"

    @property
    def pod_spec(self) -> dict[str, Any]:
        """The PodSpec: a Pod's own, or the (job) template's."""
        spec: dict[str, Any] = self.obj.get("spec") or {}
        if self.kind == "Pod":
            return spec
        if self.kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        template: dict[str, Any] = spec.get("template") or {}
        pod_spec: dict[str, Any] = template.get("spec") or {}
        return pod_spec


@dataclass(frozen=True)
class Source:
    """Where one corpus file came from (a row of sources.yaml)."""

    file: str
    repository: str
    path: str
    commit: str
    license: str
    shapes: tuple[str, ...]
    #: Kinds of the upstream file's other documents, left out because they carry no pod.
    dropped: tuple[str, ...] = ()


def manifest_files() -> list[Path]:
    """Every corpus file, in name order (the NNN prefix)."""
    return sorted(MANIFESTS_DIR.glob("*.yaml"))


def file_documents(path: Path) -> list[CorpusDocument]:
    """The documents of one corpus file; empty documents (a trailing ``---``) are skipped.

    Raises ValueError, naming the file and index, for a document that is not a
    pod-bearing object: the corpus holds nothing else.
    """
    docs: list[CorpusDocument] = []
    loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    for index, obj in enumerate(loaded):
        if not isinstance(obj, dict) or obj.get("kind") not in POD_BEARING_KINDS:
            kind = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"{path.name}#{index}: {kind} is not a pod-bearing kind")
        meta = obj.get("metadata") or {}
        name = meta.get("name") or meta.get("generateName") or ""
        docs.append(CorpusDocument(path.name, index, obj["kind"], name, obj))
    return docs


def documents() -> list[CorpusDocument]:
    """Every pod-bearing document of the corpus, file by file."""
    return [doc for path in manifest_files() for doc in file_documents(path)]


def sources() -> list[Source]:
    """The rows of sources.yaml, in file order."""
    rows = yaml.safe_load(SOURCES_FILE.read_text()) or []
    return [
        Source(
            file=row["file"],
            repository=row["repository"],
            path=row["path"],
            commit=row["commit"],
            license=row["license"],
            shapes=tuple(row.get("shapes") or ()),
            dropped=tuple(row.get("dropped") or ()),
        )
        for row in rows
    ]


def runtime_classes() -> dict[str, dict[str, Any]]:
    """The upstream RuntimeClass objects under ``runtimeclasses/``, by name.

    A Pod naming a RuntimeClass the cluster lacks is refused at admission, and
    one the cluster has gets the class's ``overhead`` added to ``R(pod)``:
    tests that admit the corpus pods install these first.
    """
    classes: dict[str, dict[str, Any]] = {}
    for path in sorted(RUNTIME_CLASSES_DIR.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if obj is not None:
                classes[obj["metadata"]["name"]] = obj
    return classes
