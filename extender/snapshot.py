"""Reading a static cluster state: Nodes and Pods from a file, for tests, benchmarks and what-ifs.

Accepted shapes, the ones ``kubectl get -o yaml|json`` and people produce:
a YAML stream (``---``-separated documents), a JSON document, or newline
separated JSON documents; any document may be a ``List`` (``v1/List``,
``NodeList``, ``PodList``) whose ``items`` are read in turn. Other kinds are
ignored (a snapshot taken with ``kubectl get nodes,pods,svc`` still works).
JSON is tried first: a 250,000-pod snapshot parses in seconds with orjson,
and in minutes with a YAML parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

JsonObject = dict[str, Any]


class SnapshotError(ValueError):
    """The file cannot be read as Kubernetes objects; the message names the file."""


@dataclass
class Snapshot:
    """The Nodes and Pods of a static cluster state."""

    nodes: list[JsonObject] = field(default_factory=list)
    pods: list[JsonObject] = field(default_factory=list)
    ignored: int = 0


def _documents(text: str, source: str) -> Iterator[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            yield orjson.loads(stripped)
            return
        except orjson.JSONDecodeError:
            pass
        lines = [line for line in stripped.splitlines() if line.strip()]
        try:
            decoded = [orjson.loads(line) for line in lines]
        except orjson.JSONDecodeError:
            decoded = None
        if decoded is not None:
            yield from decoded
            return
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        yield from yaml.load_all(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SnapshotError(f"{source}: not valid YAML or JSON{where}: {getattr(exc, 'problem', exc)}") from None


def _objects(document: Any) -> Iterator[Any]:
    if document is None:
        return
    if isinstance(document, list):
        for item in document:
            yield from _objects(item)
        return
    if isinstance(document, dict) and isinstance(document.get("items"), list) and str(
        document.get("kind", "List")
    ).endswith("List"):
        for item in document["items"]:
            yield from _objects(item)
        return
    yield document


def parse_objects(documents: Iterable[Any], source: str = "snapshot") -> Snapshot:
    """The Nodes and Pods among decoded documents (Lists unpacked, other kinds ignored)."""
    snapshot = Snapshot()
    for i, obj in enumerate(_objects(documents)):
        if not isinstance(obj, dict):
            raise SnapshotError(f"{source}: object {i} is not a mapping")
        kind = obj.get("kind")
        if kind == "Node":
            snapshot.nodes.append(obj)
        elif kind == "Pod":
            snapshot.pods.append(obj)
        else:
            snapshot.ignored += 1
    return snapshot


def load_text(text: str, source: str = "snapshot") -> Snapshot:
    """A snapshot from YAML or JSON text."""
    return parse_objects(list(_documents(text, source)), source)


def load_snapshot(path: str | Path) -> Snapshot:
    """A snapshot from a file; :class:`SnapshotError` when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc.strerror or exc}") from None
    return load_text(text, str(path))


def load_pods(paths: Iterable[str | Path]) -> list[JsonObject]:
    """Pods from files (or, for a directory, every ``*.yaml``/``*.yml``/``*.json`` in it, sorted)."""
    pods: list[JsonObject] = []
    for path in paths:
        p = Path(path)
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json")) if p.is_dir() else [p]
        for f in files:
            pods.extend(load_snapshot(f).pods)
    return pods
