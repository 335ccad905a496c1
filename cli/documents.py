"""Reading and writing manifest streams, and finding the pods inside workloads.

``meshfit inject`` behaves like ``istioctl kube-inject``: it takes whatever
``kubectl apply -f`` would (a file, a directory, standard input; YAML streams,
JSON, ``List`` objects), injects into Pods and pod templates, and passes
everything else through untouched, in order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from cli.errors import CommandError
from policy.workloads import TEMPLATE_PATHS, pod_template

@dataclass(frozen=True, slots=True)
class Document:
    source: str
    index: int
    body: Any

    @property
    def label(self) -> str:
        kind = self.body.get("kind", "?") if isinstance(self.body, dict) else "?"
        meta = (self.body.get("metadata") or {}) if isinstance(self.body, dict) else {}
        name = meta.get("name") or meta.get("generateName") or "<unnamed>"
        ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
        return f"{self.source} document {self.index + 1} ({kind} {ns}{name})"


def read_documents(source: str) -> list[Document]:
    """All documents of a file, a directory (``*.yaml``, ``*.yml``, ``*.json``, sorted) or ``-``."""
    if source == "-":
        return _parse(sys.stdin.read(), "<stdin>")
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
        return [d for f in files for d in _parse(f.read_text(encoding="utf-8"), str(f))]
    if not path.exists():
        raise CommandError(f"{source}: no such file or directory")
    return _parse(path.read_text(encoding="utf-8"), source)


def _parse(text: str, source: str) -> list[Document]:
    try:
        bodies = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CommandError(f"{source}:{where}: not valid YAML or JSON: {getattr(exc, 'problem', exc)}") from None
    return [Document(source, i, body) for i, body in enumerate(bodies)]


PodFn = Callable[[dict[str, Any], str | None, tuple[str, str] | None], dict[str, Any]]


def transform(body: Any, on_pod: PodFn, default_namespace: str | None) -> Any:
    """Apply ``on_pod(pod, namespace, owner)`` to every pod and pod template in ``body``.

    ``owner`` is ``(kind, name)`` for templates, so an experiment buckets a
    Deployment's manifest as it will bucket the Deployment's pods.
    """
    if not isinstance(body, dict):
        return body
    kind = body.get("kind")
    namespace = (body.get("metadata") or {}).get("namespace") or default_namespace
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List") and isinstance(body.get("items"), list)):
        return {**body, "items": [transform(item, on_pod, default_namespace) for item in body.get("items") or ()]}
    if kind == "Pod":
        return on_pod(body, namespace, None)
    template = pod_template(body)
    if template is None:
        return body
    path = TEMPLATE_PATHS[str(kind)]
    name = str((body.get("metadata") or {}).get("name") or "")
    as_pod = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
    new = on_pod(as_pod, namespace, (str(kind), name))
    if new is as_pod:
        return body  # skipped: the document comes back exactly as it was
    return _replace(body, path, {**template, "metadata": new["metadata"], "spec": new["spec"]})


def pods_of(body: Any, default_namespace: str | None) -> Iterator[tuple[dict[str, Any], str | None, tuple[str, str] | None]]:
    """Every pod or pod template in ``body``, as ``transform`` would visit them."""
    found: list[tuple[dict[str, Any], str | None, tuple[str, str] | None]] = []

    def collect(pod: dict[str, Any], ns: str | None, owner: tuple[str, str] | None) -> dict[str, Any]:
        found.append((pod, ns, owner))
        return pod

    transform(body, collect, default_namespace)
    return iter(found)


def _replace(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if not path:
        return value
    return {**body, path[0]: _replace(body.get(path[0]) or {}, path[1:], value)}


def dump(bodies: list[Any], output: str) -> str:
    if output == "json":
        if len(bodies) == 1:
            return orjson.dumps(bodies[0], option=orjson.OPT_INDENT_2).decode() + "\n"
        return orjson.dumps({"apiVersion": "v1", "kind": "List", "items": bodies}, option=orjson.OPT_INDENT_2).decode() + "\n"
    return yaml.safe_dump_all(bodies, sort_keys=False, default_flow_style=False, width=120)
