"""``meshfit.io/target`` and ``meshfit.io/operation``: the request a higher layer writes, and the answer.

The field's layering is kept: a higher layer (``meshfit upgrade``, a
``SidecarRollout``, any tool) writes a **target** on a pod and never edits the
pod's spec; the fleet controller carries it out and writes the **operation**:

``meshfit.io/target``::

    {"generation": 3,
     "sidecars": {"rpc-mesh": {"version": "1.9.0"},
                  "msg-mesh": {"active": false},
                  "log-agent": {"restart": "2026-12-01T10:00:00Z"},
                  "trace-agent": {"resources": {"limits": {"cpu": "1"}}, "action": "resize"}}}

``generation`` is how a higher layer asks again: an operation that failed or was
blocked is not retried for the same generation (a crash-looping version is not
restarted forever), a higher generation asks afresh. Per sidecar: ``version``,
``active`` (a dormant slot on or off), ``restart`` (a token; a new value asks for
one restart of that sidecar alone), ``resources`` (a resize), and ``action``,
which forces how (``auto``, the default, lets the controller choose the cheapest
that works).

``meshfit.io/operation`` holds the controller's last operation (sidecar, action,
from, to, phase, reason, times, and what it compares against to judge the
kubelet's answer), plus ``settled``: for the current generation, which sidecars
already ended ``Failed`` or ``Blocked``, so that one pod's several sidecars are
each tried once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import orjson

from policy.quantity import Quantity, QuantityError

Action = Literal["auto", "in-place", "hot", "activate", "deactivate", "restart", "resize", "recreate"]
ACTIONS: tuple[str, ...] = get_args(Action)
#: What a target may force: the choice among ways to reach a version or an activation.
FORCEABLE = ("auto", "in-place", "hot", "recreate", "resize", "restart")
Phase = Literal["InProgress", "Succeeded", "Failed", "Blocked"]
PHASES: tuple[str, ...] = get_args(Phase)
#: Phases after which the controller does not retry the same generation of the same sidecar.
FINAL_FAILURES = ("Failed", "Blocked")
#: The largest annotation text read (a target is a few hundred bytes; anything larger is a mistake).
MAX_TEXT = 64 * 1024


class TargetError(ValueError):
    """A target or operation annotation that does not parse; the message names the field."""


@dataclass(frozen=True, slots=True)
class SidecarTarget:
    """What one sidecar should become; ``None`` fields ask for no change."""

    version: str | None = None
    active: bool | None = None
    restart: str | None = None
    #: ``{"requests": {...}, "limits": {...}}``, quantities parsed.
    resources: dict[str, dict[str, Quantity]] | None = None
    action: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.version is not None:
            out["version"] = self.version
        if self.active is not None:
            out["active"] = self.active
        if self.restart is not None:
            out["restart"] = self.restart
        if self.resources is not None:
            out["resources"] = {kind: {r: str(q) for r, q in values.items()} for kind, values in self.resources.items()}
        if self.action != "auto":
            out["action"] = self.action
        return out


@dataclass(frozen=True, slots=True)
class Target:
    """The whole ``meshfit.io/target`` of a pod."""

    generation: int
    sidecars: dict[str, SidecarTarget] = field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps({"generation": self.generation,
                             "sidecars": {n: t.to_dict() for n, t in self.sidecars.items()}}).decode()


def _load(text: object, what: str) -> dict[str, Any]:
    if not isinstance(text, str):
        raise TargetError(f"{what}: the annotation must be a string")
    if len(text) > MAX_TEXT:
        raise TargetError(f"{what}: {len(text)} bytes, more than the {MAX_TEXT} accepted")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise TargetError(f"{what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TargetError(f"{what}: a JSON object is required")
    return data


def _generation(data: dict[str, Any], where: str) -> int:
    value = data.get("generation", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**53:
        raise TargetError(f"{where}.generation: a whole number from 0, not {value!r}")
    return value


def _resources(value: Any, where: str) -> dict[str, dict[str, Quantity]]:
    if not isinstance(value, dict) or not value or set(value) - {"requests", "limits"}:
        raise TargetError(f"{where}: an object with requests and/or limits")
    out: dict[str, dict[str, Quantity]] = {}
    for kind, values in value.items():
        if not isinstance(values, dict) or set(values) - {"cpu", "memory"}:
            raise TargetError(f"{where}.{kind}: an object of cpu and/or memory quantities")
        parsed: dict[str, Quantity] = {}
        for r, text in values.items():
            try:
                parsed[r] = Quantity.parse(text)
            except QuantityError as exc:
                raise TargetError(f"{where}.{kind}.{r}: {exc}") from None
        out[kind] = parsed
    return out


def parse_target(text: object) -> Target:
    """The target of an annotation's text; :class:`TargetError` naming the field when it is wrong."""
    data = _load(text, "target")
    generation = _generation(data, "target")
    items = data.get("sidecars")
    if not isinstance(items, dict):
        raise TargetError("target.sidecars: an object of sidecar name to target is required")
    sidecars: dict[str, SidecarTarget] = {}
    for name, item in items.items():
        where = f"target.sidecars.{name}"
        if not isinstance(item, dict):
            raise TargetError(f"{where}: an object is required")
        unknown = set(item) - {"version", "active", "restart", "resources", "action"}
        if unknown:
            raise TargetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        version = item.get("version")
        if version is not None and (not isinstance(version, str) or not version):
            raise TargetError(f"{where}.version: a non-empty string")
        active = item.get("active")
        if active is not None and not isinstance(active, bool):
            raise TargetError(f"{where}.active: true or false")
        restart = item.get("restart")
        if restart is not None and (not isinstance(restart, str) or not restart):
            raise TargetError(f"{where}.restart: a non-empty token")
        action = item.get("action", "auto")
        if action not in FORCEABLE:
            raise TargetError(f"{where}.action: one of {', '.join(FORCEABLE)}, not {action!r}")
        resources = _resources(item["resources"], f"{where}.resources") if "resources" in item else None
        sidecars[name] = SidecarTarget(version, active, restart, resources, action)
    return Target(generation, sidecars)


@dataclass(frozen=True, slots=True)
class Operation:
    """The controller's last operation on a pod, and what it has settled for the current generation."""

    generation: int
    sidecar: str
    action: str
    phase: str
    reason: str = ""
    from_: str | None = None
    to: str | None = None
    started: str = ""
    finished: str | None = None
    #: Hot upgrades have two steps: ``start`` (the new version in the idle slot), ``retire`` (the old slot idled).
    step: str = ""
    #: The container being changed, and its ``restartCount``/``imageID`` before the change.
    container: str = ""
    restarts_before: int = 0
    image_id_before: str = ""
    #: The image the container is being moved to (what the kubelet must report), and the one it had.
    image: str = ""
    image_before: str = ""
    #: The container's resources before a resize (what a failed resize returns to).
    resources_before: dict[str, Any] = field(default_factory=dict)
    #: ... and the resources it is being resized to.
    resources: dict[str, Any] = field(default_factory=dict)
    #: The action that would work where this one is ``Blocked``.
    suggest: str | None = None
    rolled_back: bool = False
    #: Sidecar name -> ``Failed``/``Blocked`` for ``generation``: not retried until the generation moves.
    settled: dict[str, str] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        return self.phase == "InProgress"

    def settled_for(self, generation: int) -> dict[str, str]:
        """What has ended in failure for ``generation`` (nothing, for another generation)."""
        return self.settled if self.generation == generation else {}

    def finish(self, phase: str, reason: str, now: str, **changes: Any) -> Operation:
        """This operation, ended: ``Failed``/``Blocked`` are remembered in ``settled``."""
        settled = dict(self.settled)
        if phase in FINAL_FAILURES:
            settled[self.sidecar] = phase
        return replace(self, phase=phase, reason=reason, finished=now, settled=settled, **changes)

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "generation": self.generation, "sidecar": self.sidecar, "action": self.action, "phase": self.phase,
            "reason": self.reason, "from": self.from_, "to": self.to, "started": self.started,
        }
        if self.finished is not None:
            out["finished"] = self.finished
        for key, value in (("step", self.step), ("container", self.container), ("image", self.image),
                           ("imageBefore", self.image_before), ("imageIDBefore", self.image_id_before)):
            if value:
                out[key] = value
        if self.container:
            out["restartsBefore"] = self.restarts_before
        if self.resources_before:
            out["resourcesBefore"] = self.resources_before
        if self.resources:
            out["resources"] = self.resources
        if self.suggest:
            out["suggest"] = self.suggest
        if self.rolled_back:
            out["rolledBack"] = True
        if self.settled:
            out["settled"] = dict(self.settled)
        return orjson.dumps(out).decode()


def parse_operation(text: object) -> Operation:
    """The operation of an annotation's text; :class:`TargetError` naming the field when it is wrong."""
    data = _load(text, "operation")
    generation = _generation(data, "operation")

    def string(key: str, required: bool = False) -> str:
        value = data.get(key, "")
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value):
            raise TargetError(f"operation.{key}: a string{' is required' if required else ''}")
        return value

    phase = string("phase", True)
    if phase not in PHASES:
        raise TargetError(f"operation.phase: one of {', '.join(PHASES)}, not {phase!r}")
    action = string("action", True)
    if action not in ACTIONS:
        raise TargetError(f"operation.action: one of {', '.join(ACTIONS)}, not {action!r}")
    restarts = data.get("restartsBefore", 0)
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise TargetError("operation.restartsBefore: a whole number from 0")
    settled = data.get("settled", {})
    if not isinstance(settled, dict) or not all(isinstance(k, str) and v in FINAL_FAILURES for k, v in settled.items()):
        raise TargetError("operation.settled: an object of sidecar name to Failed or Blocked")
    resources_before, resources = data.get("resourcesBefore", {}), data.get("resources", {})
    if not isinstance(resources_before, dict) or not isinstance(resources, dict):
        raise TargetError("operation.resourcesBefore and .resources: objects")
    return Operation(
        generation=generation, sidecar=string("sidecar", True), action=action, phase=phase,
        reason=string("reason"), from_=string("from") or None, to=string("to") or None,
        started=string("started"), finished=string("finished") or None, step=string("step"),
        container=string("container"), restarts_before=restarts, image_id_before=string("imageIDBefore"),
        image=string("image"), image_before=string("imageBefore"), resources_before=dict(resources_before),
        resources=dict(resources),
        suggest=string("suggest") or None, rolled_back=data.get("rolledBack") is True,
        settled=dict(settled),
    )


def next_target(current: Target | None, sidecar: str, change: SidecarTarget) -> Target:
    """``current`` with ``sidecar``'s entry replaced by ``change``, one generation on (a request made afresh)."""
    sidecars = dict(current.sidecars) if current is not None else {}
    sidecars[sidecar] = change
    return Target((current.generation if current is not None else 0) + 1, sidecars)


def progress_of(operation_text: object, status_matches: bool, sidecar: str, generation: int) -> tuple[str, str]:
    """Where a pod stands on ``generation`` of its target for ``sidecar``: ``done``, ``failed``, ``blocked`` or ``pending``.

    ``status_matches``: the status record already says what the target asks.
    """
    op: Operation | None = None
    if operation_text is not None:
        try:
            op = parse_operation(operation_text)
        except TargetError:
            op = None
    if op is not None and op.generation == generation:
        settled = op.settled_for(generation)
        verdict = settled.get(sidecar) or settled.get("*")
        if verdict is not None:
            reason = op.reason if op.sidecar in (sidecar, "*") else f"{verdict} earlier for this generation"
            return verdict.lower(), reason
        if op.sidecar == sidecar and op.in_progress:
            return "pending", f"{op.action} {op.step or ''}".strip() + " in progress"
    if status_matches and not (op is not None and op.in_progress and op.sidecar == sidecar):
        return "done", op.reason if op is not None and op.sidecar == sidecar and op.generation == generation else ""
    return "pending", "waiting for the controller"
