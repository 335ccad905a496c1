"""RuntimeClass overhead for offline injection, so ``meshfit inject`` sizes pods as the webhook will.

The apiserver's RuntimeClass admission plugin sets ``spec.overhead`` from the
pod's RuntimeClass *before* mutating webhooks run, so the webhook sizes the
mesh with the overhead in ``A``. Offline, the CLI learns the same overheads from
RuntimeClass documents in its input or from ``--runtime-class NAME=cpu=..,memory=..``,
applies them for the computation only (the printed pod stays as written: the
apiserver adds the overhead itself and refuses a pod whose overhead disagrees
with its RuntimeClass), and says so plainly where a pod names a RuntimeClass it
does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cli.errors import CommandError
from policy.quantity import QuantityError
from policy.resources import RESOURCES, q


def parse_runtime_class_flag(text: str) -> tuple[str, dict[str, str]]:
    """``kata=cpu=250m,memory=160Mi`` → ``("kata", {"cpu": "250m", "memory": "160Mi"})``."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip():
        raise CommandError(f"--runtime-class: expected NAME=cpu=<quantity>,memory=<quantity>, got {text!r}")
    overhead: dict[str, str] = {}
    for part in (p.strip() for p in rest.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in RESOURCES:
            raise CommandError(f"--runtime-class {name}: expected cpu=<quantity>,memory=<quantity>, got {part!r}")
        try:
            q(value.strip())
        except QuantityError as exc:
            raise CommandError(f"--runtime-class {name}: {key.strip()}: {exc}") from None
        overhead[key.strip()] = value.strip()
    return name.strip(), overhead


def overheads_from(documents: Iterable[Any], flags: Iterable[str]) -> dict[str, dict[str, Any]]:
    """RuntimeClass name → ``overhead.podFixed`` (cpu/memory only), documents first, flags win."""
    out: dict[str, dict[str, Any]] = {}
    for body in documents:
        if isinstance(body, Mapping) and body.get("kind") == "RuntimeClass":
            name = (body.get("metadata") or {}).get("name")
            fixed = ((body.get("overhead") or {}).get("podFixed")) or {}
            if isinstance(name, str) and isinstance(fixed, Mapping):
                out[name] = {r: fixed[r] for r in RESOURCES if fixed.get(r) is not None}
    for flag in flags:
        name, overhead = parse_runtime_class_flag(flag)
        out[name] = overhead
    return out


def with_overhead(pod: dict[str, Any], overheads: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """The pod as admission will see it, and a warning where its RuntimeClass is unknown.

    A pod that already carries ``spec.overhead`` is taken as it is.
    """
    spec = pod.get("spec") or {}
    name = spec.get("runtimeClassName")
    if not name or spec.get("overhead") is not None:
        return pod, None
    if name not in overheads:
        return pod, (f"runtimeClassName {name}: its overhead is unknown here, so the sidecars are sized without it; "
                     "if the RuntimeClass sets overhead.podFixed, the webhook will size them differently "
                     "(pass --runtime-class NAME=cpu=..,memory=.. or include the RuntimeClass in the input)")
    if not overheads[name]:
        return pod, None
    return {**pod, "spec": {**spec, "overhead": dict(overheads[name])}}, None


def without_overhead(pod: dict[str, Any]) -> dict[str, Any]:
    """The injected pod as printed: the overhead is the apiserver's to add."""
    spec = dict(pod["spec"])
    spec.pop("overhead", None)
    return {**pod, "spec": spec}
