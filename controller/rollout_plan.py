"""A ``SidecarRollout``'s next step: a pure function of the resource, its pods, the time and the freeze windows.

Everything the next step needs is in the rollout's own status — the batch
index, each batch's pods with the target generation written for them and the
version they had, start, settle, bake and end times, every measurement and
the verdict — so a new leader, or this one after a restart, reads where the
rollout stands and carries on; nothing is remembered in memory. The pods are
read afresh each time (their ``meshfit.io/target``, ``/operation`` and
``/status``), so a write that landed but whose status update did not is
*adopted* (the pod already asks for the version with a newer generation),
and one that never landed is made again.

The life of a batch::

    Updating   targets written, at most maxUnavailable per workload mid-change;
               a pod whose operation fails or is blocked fails the batch at once
    Baking     every pod settled; wait ``bake``
    Analysing  a round of measurements every ``analysis.interval``
               -> Successful: the next batch (or, on ``pause: true``, wait for promote)
               -> Inconclusive: Paused with the reason and a deadline, rounds go on
               -> Failed: circuit broken — the batch's pods get their previous
                  version back as a new target (``onFailure: rollback``), nothing
                  further starts

Freeze windows and ``spec.paused`` hold every new target (a rollback still
goes ahead: it lowers risk); the analysis of a batch already changed goes on
while held, because its pods are already at risk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.rollout_analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    Measurement,
    Reading,
    Verdict,
    builtin_measurements,
    last_baseline,
    metric_measurement,
    parse_stamp,
    prune,
    stamp,
    verdict,
)
from controller.rollout_pick import cumulative, pick, writable
from controller.rollout_pods import PodView
from controller.rollout_spec import RolloutSpec, Selection, SpecError, parse_spec, spec_document
from policy.freeze import FreezeWindow, active_window
from policy.targets import SidecarTarget, next_target

PENDING, PROGRESSING, PAUSED, SUCCEEDED, FAILED_PHASE, ABORTED = (
    "Pending", "Progressing", "Paused", "Succeeded", "Failed", "Aborted")
PHASES = (PENDING, PROGRESSING, PAUSED, SUCCEEDED, FAILED_PHASE, ABORTED)
UPDATING, BAKING, ANALYSING, WAITING, ROLLING_BACK, ROLLED_BACK, STOPPED = (
    "Updating", "Baking", "Analysing", "Waiting", "RollingBack", "RolledBack", "Stopped")
#: How often a rollout whose pods are changing is looked at again when no other time is due.
DEFAULT_POLL = 2.0
#: Baseline pods named in a ``{{baselinePods}}`` query at most (a stable hash picks them).
BASELINE_PODS = 500


# -- the status record -------------------------------------------------------------------------------------
@dataclass
class PodRecord:
    """One pod of a batch: who it is, what it had, which generation asks for the version, where it stands."""

    pod: str
    uid: str = ""
    previous: str | None = None
    #: The pod's target generation when it was picked: only a newer one asking the version is this rollout's.
    base: int = 0
    #: The generation written asking the version (0: not yet written).
    generation: int = 0
    #: ``pending``, ``done``, ``failed``, ``blocked``, ``gone`` (deleted or replaced).
    state: str = "pending"
    #: Restarts of the pod's containers when its change settled (the builtin restarts check counts from here).
    restarts: int | None = None
    #: The generation written asking ``previous`` back (0: none).
    rollback: int = 0
    rollback_state: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pod": self.pod}
        if self.uid:
            out["uid"] = self.uid
        if self.previous is not None:
            out["from"] = self.previous
        if self.base:
            out["base"] = self.base
        if self.generation:
            out["gen"] = self.generation
        out["state"] = self.state
        if self.restarts is not None:
            out["restarts"] = self.restarts
        if self.rollback:
            out["rollback"] = self.rollback
            out["rollbackState"] = self.rollback_state or "pending"
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PodRecord:
        restarts = d.get("restarts")
        return cls(pod=str(d.get("pod") or ""), uid=str(d.get("uid") or ""),
                   previous=str(d["from"]) if d.get("from") is not None else None, base=_int(d.get("base")),
                   generation=_int(d.get("gen")), state=str(d.get("state") or "pending"),
                   restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else None,
                   rollback=_int(d.get("rollback")), rollback_state=str(d.get("rollbackState") or ""))


@dataclass
class BatchRecord:
    index: int
    pods: list[PodRecord] = field(default_factory=list)
    started: str = ""
    settled: str | None = None
    bake_until: str | None = None
    next_measurement: str | None = None
    ended: str | None = None
    #: ``Running``, ``Successful``, ``Failed``, ``Inconclusive``, ``Skipped``, ``Aborted``.
    verdict: str = "Running"
    reason: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    #: When the first round that was not conclusive was taken (the inconclusive deadline counts from it).
    unclear_since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "started": self.started, "verdict": self.verdict,
                               "pods": [p.to_dict() for p in self.pods]}
        for key, value in (("settled", self.settled), ("bakeUntil", self.bake_until),
                           ("nextMeasurement", self.next_measurement), ("ended", self.ended),
                           ("unclearSince", self.unclear_since)):
            if value is not None:
                out[key] = value
        if self.reason:
            out["reason"] = self.reason
        if self.measurements:
            out["measurements"] = [m.to_dict() for m in self.measurements]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BatchRecord:
        return cls(index=_int(d.get("index")), pods=[PodRecord.from_dict(p) for p in d.get("pods") or ()],
                   started=str(d.get("started") or ""), settled=_opt(d.get("settled")),
                   bake_until=_opt(d.get("bakeUntil")), next_measurement=_opt(d.get("nextMeasurement")),
                   ended=_opt(d.get("ended")), verdict=str(d.get("verdict") or "Running"),
                   reason=str(d.get("reason") or ""),
                   measurements=[Measurement.from_dict(m) for m in d.get("measurements") or ()],
                   unclear_since=_opt(d.get("unclearSince")))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt(value: object) -> str | None:
    return str(value) if value else None


# -- the decision ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Write:
    """One pod's ``meshfit.io/target``, conditional on the resourceVersion read."""

    pod: str
    namespace: str
    name: str
    resource_version: str
    target: str
    generation: int
    rollback: bool = False


@dataclass(frozen=True, slots=True)
class MeasureRequest:
    """A round is due: the queries' inputs. The caller measures and plans again with the readings."""

    round: int
    batch_pods: tuple[PodView, ...]
    baseline_pods: tuple[PodView, ...]
    namespaces: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    status: dict[str, Any]
    writes: tuple[Write, ...] = ()
    measure: MeasureRequest | None = None
    #: ``(type, reason, message)`` Events about the rollout.
    events: tuple[tuple[str, str, str], ...] = ()
    requeue_after: float | None = None
    #: The check that broke the circuit (``aborted_total{reason}``), when this step broke it.
    aborted: str | None = None
    #: ``(verdict, seconds)`` of each batch that ended in this step.
    ended_batches: tuple[tuple[str, float], ...] = ()
    spec: RolloutSpec | None = None


def select(views: Sequence[PodView], selection: Selection, namespace_labels: Mapping[str, Mapping[str, str]]
           ) -> list[PodView]:
    """The pods a selection takes (namespaces and namespaceSelector must both hold when both are given)."""
    out = []
    for view in views:
        if selection.namespaces and view.namespace not in selection.namespaces:
            continue
        if selection.namespace_selector is not None and not selection.namespace_selector.matches(
                namespace_labels.get(view.namespace, {})):
            continue
        if selection.pod_selector is not None and not selection.pod_selector.matches(view.labels):
            continue
        if selection.zones and view.zone not in selection.zones:
            continue
        out.append(view)
    return out


@dataclass
class _Work:
    """The rollout being decided: its status, read once, changed in place, written back as a dict."""

    cr: Mapping[str, Any]
    spec: RolloutSpec
    now: dt.datetime
    views: dict[str, PodView]
    windows: Sequence[FreezeWindow]
    readings: Mapping[str, tuple[Reading, Reading | None]] | None
    poll: float
    status: dict[str, Any]
    batches: list[BatchRecord]
    writes: list[Write] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    ended: list[tuple[str, float]] = field(default_factory=list)
    wake: list[float] = field(default_factory=list)
    measure: MeasureRequest | None = None
    aborted: str | None = None

    @property
    def text_now(self) -> str:
        return stamp(self.now)

    def at(self, moment: dt.datetime | None) -> None:
        if moment is not None:
            self.wake.append(max(0.0, (moment - self.now).total_seconds()))

    def set_phase(self, phase: str, step: str, reason: str, message: str, *, deadline: dt.datetime | None = None,
                  event: str | None = None, type_: str = "Normal") -> None:
        changed = (self.status.get("phase"), self.status.get("reason")) != (phase, reason)
        self.status.update(phase=phase, step=step, reason=reason, message=message)
        if deadline is not None:
            self.status["deadline"] = stamp(deadline)
        else:
            self.status.pop("deadline", None)
        if changed and event is not None:
            self.events.append((type_, event, message))


def plan(cr: Mapping[str, Any], pods: Sequence[PodView], now: dt.datetime, windows: Sequence[FreezeWindow] = (),
         readings: Mapping[str, tuple[Reading, Reading | None]] | None = None, *, poll: float = DEFAULT_POLL
         ) -> Decision:
    """The next step of rollout ``cr`` (a dict as the apiserver returns it) over its selected ``pods``.

    ``readings``: the Prometheus answers for a round this function asked for
    (:attr:`Decision.measure`), by metric name: the batch's reading and the
    baseline's (``None`` when no pod is left unchanged).
    """
    status: dict[str, Any] = dict(cr.get("status") or {})
    spec_doc = cr.get("spec") or {}
    meta = cr.get("metadata") or {}
    spec, error = spec_of(cr)
    if error is None:
        status["acceptedSpec"] = spec_document(spec_doc)
        condition = ("True", "Accepted", "the spec is valid")
    else:
        condition = ("False", "SpecInvalid", f"the spec is refused ({error}); " + (
            "acting on the last good spec" if spec is not None else "nothing is done until it is fixed"))
    events: list[tuple[str, str, str]] = []
    _set_condition(status, "SpecValid", *condition, now=now, events=events)
    status["observedGeneration"] = _int(meta.get("generation"))
    if spec is None:
        if not status.get("phase"):
            status.update(phase=PENDING, step="", reason="SpecInvalid", message=condition[2])
        return Decision(status, events=tuple(events))
    work = _Work(cr, spec, now, {v.key: v for v in pods}, windows, readings, poll, status,
                 [BatchRecord.from_dict(b) for b in status.get("batches") or ()], events=events)
    _step(work)
    status["batches"] = [b.to_dict() for b in work.batches]
    _counts(work)
    return Decision(status, tuple(work.writes), work.measure, tuple(work.events),
                    min(work.wake) if work.wake else None, work.aborted, tuple(work.ended), spec)


def spec_of(cr: Mapping[str, Any]) -> tuple[RolloutSpec | None, SpecError | None]:
    """The spec to act on, and why the live one is refused (then: the last good one, with the live controls).

    ``paused``, ``abort`` and ``promotedBatch`` are read from the live spec even
    while the rest of it is refused: a person must be able to stop a rollout
    whose spec they just broke.
    """
    spec_doc = cr.get("spec") or {}
    try:
        return parse_spec(spec_doc), None
    except SpecError as exc:
        error = exc
    accepted = (cr.get("status") or {}).get("acceptedSpec")
    if not isinstance(accepted, Mapping):
        return None, error
    controls = {k: spec_doc[k] for k in ("paused", "abort", "promotedBatch")
                if isinstance(spec_doc, Mapping) and k in spec_doc}
    for candidate in ({**accepted, **controls}, dict(accepted)):
        try:
            return parse_spec(candidate), error
        except SpecError:
            continue
    return None, error


def forget_writes(status: Mapping[str, Any], refused: set[str]) -> dict[str, Any]:
    """``status`` with the refused writes undone (their pods' generations back to unwritten), to be made again."""
    out = dict(status)
    batches = []
    for batch in status.get("batches") or ():
        record = BatchRecord.from_dict(batch)
        for pod in record.pods:
            if pod.pod in refused:
                if pod.rollback and pod.rollback_state in ("", "pending"):
                    pod.rollback, pod.rollback_state = 0, ""
                elif pod.state == "pending":
                    pod.generation = 0
        batches.append(record.to_dict())
    out["batches"] = batches
    return out


def _set_condition(status: dict[str, Any], type_: str, value: str, reason: str, message: str, *,
                   now: dt.datetime, events: list[tuple[str, str, str]]) -> None:
    conditions = [dict(c) for c in status.get("conditions") or () if isinstance(c, Mapping)]
    old = next((c for c in conditions if c.get("type") == type_), None)
    if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (value, reason, message):
        return
    entry = {"type": type_, "status": value, "reason": reason, "message": message,
             "lastTransitionTime": (old or {}).get("lastTransitionTime") if old is not None
             and old.get("status") == value else stamp(now).split(".")[0] + "Z"}
    conditions = [c for c in conditions if c.get("type") != type_] + [entry]
    status["conditions"] = conditions
    if value == "False":
        events.append(("Warning", "RolloutSpecInvalid", message))


def _counts(work: _Work) -> None:
    views = work.views.values()
    work.status["total"] = len(views)
    work.status["updated"] = sum(1 for v in views if v.version == work.spec.version)
    index = int(work.status.get("batch") or 0)
    work.status["batchText"] = f"{min(index + 1, len(work.spec.batches))}/{len(work.spec.batches)}"


# -- the machine --------------------------------------------------------------------------------------------
def _step(work: _Work) -> None:
    phase, step = work.status.get("phase") or PENDING, work.status.get("step") or ""
    if phase == SUCCEEDED or (phase in (FAILED_PHASE, ABORTED) and step in (ROLLED_BACK, STOPPED)):
        return
    if phase in (FAILED_PHASE, ABORTED) and step == ROLLING_BACK:
        _roll_back(work)
        return
    current = work.batches[-1] if work.batches else None
    if work.spec.abort:
        why = "aborted by the user (spec.abort)"
        if current is not None and current.verdict in ("Running", INCONCLUSIVE):
            current.verdict, current.reason, current.ended = "Aborted", why, work.text_now
            _ended(work, current)
        work.aborted = "user"
        work.set_phase(ABORTED, ROLLING_BACK, "Aborted", why, event="RolloutAborted", type_="Warning")
        _roll_back(work)
        return
    if current is None:
        if not work.status.get("started"):
            to_change = [v for v in work.views.values() if v.version != work.spec.version and not v.deleting]
            work.status["started"] = work.text_now
            work.status["toChange"] = len(to_change)
        _next_batch(work, 0)
        return
    if current.verdict in ("Running", INCONCLUSIVE):
        _run_batch(work, current)
        return
    # The last batch ended well: a gate, or the next one.
    _after_success(work, current)


def _held(work: _Work) -> tuple[str, str, dt.datetime | None] | None:
    """Why no new target may be written now: ``(reason, message, until)``."""
    found = active_window(work.windows, work.now)
    if found is not None:
        window, until = found
        return "FreezeWindow", f"freeze window {window.describe()} until {stamp(until)}", until
    if work.spec.paused:
        return "Paused", "paused by spec.paused (meshfit rollout resume)", None
    return None


def _after_success(work: _Work, batch: BatchRecord) -> None:
    spec = work.spec
    if batch.index + 1 >= len(spec.batches):
        _succeed(work)
        return
    gate = spec.batches[batch.index].pause and batch.verdict == SUCCESSFUL
    if gate and spec.promoted_batch < batch.index:
        work.set_phase(PAUSED, WAITING, "ManualGate",
                       f"batch {batch.index + 1} succeeded; waiting for `meshfit rollout promote` to start batch "
                       f"{batch.index + 2}", event="RolloutPaused")
        return
    _next_batch(work, batch.index + 1)


def _succeed(work: _Work) -> None:
    work.status["finished"] = work.text_now
    work.set_phase(SUCCEEDED, "", "Completed",
                   f"every batch succeeded: {sum(len(b.pods) for b in work.batches)} pods moved to "
                   f"{work.spec.sidecar} {work.spec.version}", event="RolloutSucceeded")


def _next_batch(work: _Work, index: int) -> None:
    spec = work.spec
    while True:
        held = _held(work)
        if held is not None:
            reason, message, until = held
            work.set_phase(PAUSED, WAITING, reason, f"batch {index + 1} not started: {message}", deadline=until,
                           event="RolloutPaused")
            work.at(until)
            work.status["batch"] = index
            return
        taken = {p.pod for b in work.batches for p in b.pods}
        eligible = [v for v in work.views.values()
                    if v.key not in taken and v.version != spec.version and not v.deleting]
        last = index == len(spec.batches) - 1
        batch = spec.batches[index]
        changed = len(taken)
        size = len(eligible) if last else cumulative(batch.count, batch.percent, _int(work.status.get("toChange"))) \
            - changed
        chosen = pick(eligible, size)
        record = BatchRecord(index, [PodRecord(v.key, v.uid[:8], v.version, _base(v, spec)) for v in chosen],
                             started=work.text_now)
        work.status["batch"] = index
        work.batches.append(record)
        if chosen:
            names = ", ".join(v.key for v in chosen[:10]) + (f" and {len(chosen) - 10} more" if len(chosen) > 10
                                                             else "")
            work.events.append(("Normal", "RolloutBatchStarted",
                                f"batch {index + 1}/{len(spec.batches)}: {len(chosen)} pods to {spec.sidecar} "
                                f"{spec.version}: {names}"))
            _run_batch(work, record)
            return
        record.verdict, record.ended, record.reason = "Skipped", work.text_now, "no pod left to change"
        if last:
            _succeed(work)
            return
        index += 1


def _base(view: PodView, spec: RolloutSpec) -> int:
    """The generation before this rollout's: a target already asking the version is taken as this rollout's own.

    That is a write this rollout made before a leader change lost the status
    that recorded the pick (the pick is deterministic, so the same pods come
    out): adopting it follows the operation already under way instead of
    asking again.
    """
    generation, asked = view.asks(spec.sidecar)
    return generation - 1 if asked == spec.version and generation > 0 else generation


def _run_batch(work: _Work, batch: BatchRecord) -> None:
    spec = work.spec
    if batch.settled is None:
        if _update(work, batch):
            return
    bake_until = parse_stamp(batch.bake_until) or work.now
    if work.now < bake_until:
        work.set_phase(*_progressing(work, BAKING, f"batch {batch.index + 1}: every pod settled; baking until "
                                                   f"{batch.bake_until}"))
        work.at(bake_until)
        return
    # Analysing: a round when due, and the verdict of all rounds so far.
    due = parse_stamp(batch.next_measurement) or bake_until
    if work.now >= due:
        if work.readings is None and spec.analysis.prometheus is not None and spec.analysis.prometheus.metrics:
            work.measure = _measure_request(work, batch)
            work.set_phase(*_progressing(work, ANALYSING, f"batch {batch.index + 1}: measuring round "
                                                          f"{_rounds(batch) + 1}"))
            return
        _take_round(work, batch)
        due = parse_stamp(batch.next_measurement) or work.now
    judged = verdict(spec.analysis, batch.measurements, work.now, parse_stamp(batch.unclear_since))
    _judge(work, batch, judged, due)


def _rounds(batch: BatchRecord) -> int:
    """The next round's number (rounds are numbered on, whatever was pruned)."""
    return max((m.round for m in batch.measurements), default=-1) + 1


def _progressing(work: _Work, step: str, message: str) -> tuple[str, str, str, str]:
    held = _held(work)
    if held is not None and step == UPDATING:
        return PAUSED, step, held[0], f"{message}; {held[1]}"
    if work.spec.paused:
        return PAUSED, step, "Paused", f"{message}; paused by spec.paused (the batch's analysis goes on)"
    return PROGRESSING, step, "BatchProgressing", message


def _batch_views(work: _Work, batch: BatchRecord) -> list[PodView]:
    out = []
    for record in batch.pods:
        view = work.views.get(record.pod)
        if view is not None and record.state != "gone" and (not record.uid or view.uid.startswith(record.uid)):
            out.append(view)
    return out


def _measure_request(work: _Work, batch: BatchRecord) -> MeasureRequest:
    taken = {p.pod for b in work.batches for p in b.pods}
    baseline = sorted((v for v in work.views.values() if v.key not in taken and v.version != work.spec.version),
                      key=lambda v: (v.order, v.key))[:BASELINE_PODS]
    pods = _batch_views(work, batch)
    namespaces = tuple(sorted({v.namespace for v in pods} | {v.namespace for v in baseline}))
    return MeasureRequest(_rounds(batch), tuple(pods), tuple(baseline), namespaces)


def _take_round(work: _Work, batch: BatchRecord) -> None:
    analysis = work.spec.analysis
    round_, at = _rounds(batch), work.text_now
    pods = _batch_views(work, batch)
    settled = {r.pod: r.restarts for r in batch.pods if r.restarts is not None}
    taken = builtin_measurements(analysis.builtin, pods, settled, round_=round_, at=at)
    if analysis.prometheus is not None:
        readings = work.readings or {}
        history = [m for b in work.batches for m in b.measurements]
        for metric in analysis.prometheus.metrics:
            batch_reading, baseline_reading = readings.get(metric.name, (Reading(error="not measured"), None))
            taken.append(metric_measurement(metric, batch_reading, baseline_reading, round_=round_, at=at, pods=pods,
                                            recorded_baseline=last_baseline(history, metric.name)))
    batch.measurements.extend(taken)
    if batch.unclear_since is None and any(m.result in (INCONCLUSIVE, ERROR) for m in taken):
        batch.unclear_since = at
    batch.measurements = prune(batch.measurements)
    batch.next_measurement = stamp(work.now + dt.timedelta(seconds=analysis.interval))


def _judge(work: _Work, batch: BatchRecord, judged: Verdict, due: dt.datetime) -> None:
    spec = work.spec
    if judged.state == SUCCESSFUL:
        batch.verdict, batch.reason, batch.ended = SUCCESSFUL, judged.reason, work.text_now
        _ended(work, batch)
        work.events.append(("Normal", "RolloutBatchSucceeded",
                            f"batch {batch.index + 1}/{len(spec.batches)} succeeded: {judged.reason}"))
        _after_success(work, batch)
        return
    if judged.state == FAILED:
        _fail(work, batch, judged.check or "analysis", judged.reason)
        return
    rounds = f"{judged.conclusive_rounds}/{spec.analysis.count} conclusive rounds"
    if judged.state == INCONCLUSIVE:
        batch.verdict = INCONCLUSIVE
        work.set_phase(PAUSED, ANALYSING, "Inconclusive",
                       f"batch {batch.index + 1}: analysis inconclusive ({rounds}); fails at "
                       f"{stamp(judged.deadline) if judged.deadline else '?'} unless data comes: {judged.reason}",
                       deadline=judged.deadline, event="RolloutInconclusive", type_="Warning")
        work.at(judged.deadline)
    else:
        batch.verdict = "Running"
        phase = _progressing(work, ANALYSING, f"batch {batch.index + 1}: analysing, {rounds}")
        work.set_phase(*phase, deadline=judged.deadline)
        work.at(judged.deadline)
    work.at(due)


def _fail(work: _Work, batch: BatchRecord, check: str, reason: str) -> None:
    spec = work.spec
    batch.verdict, batch.reason, batch.ended = FAILED, f"{check}: {reason}" if check == "operation" else reason, \
        work.text_now
    _ended(work, batch)
    work.aborted = check
    stop = spec.on_failure == "stop"
    then = "its pods are left as they are (onFailure: stop)" if stop else \
        "its pods are being rolled back to their previous version"
    message = f"batch {batch.index + 1} failed: {batch.reason}; {then}"
    work.set_phase(FAILED_PHASE, STOPPED if stop else ROLLING_BACK, "AnalysisFailed" if check != "operation"
                   else "OperationFailed", message, event="RolloutAborted", type_="Warning")
    if stop:
        work.status["finished"] = work.text_now
    else:
        _roll_back(work)


def _ended(work: _Work, batch: BatchRecord) -> None:
    started = parse_stamp(batch.started)
    work.ended.append((batch.verdict, (work.now - started).total_seconds() if started else 0.0))


def _update(work: _Work, batch: BatchRecord) -> bool:
    """Write and follow the batch's targets; ``True`` while the batch is still being updated (or failed)."""
    spec = work.spec
    pending: list[PodView] = []
    in_flight: dict[str, int] = {}
    failures: list[str] = []
    for record in batch.pods:
        view = work.views.get(record.pod)
        if record.state in ("done", "gone"):
            continue
        if view is None or view.deleting or (record.uid and not view.uid.startswith(record.uid)):
            record.state = "gone"
            continue
        generation, asked = view.asks(spec.sidecar)
        if record.generation and generation < record.generation:
            record.generation = 0  # the write never landed: make it again
        if not record.generation and generation > record.base and asked == spec.version:
            record.generation = generation  # written before a restart or a leader change: adopt it
        if record.generation and generation > record.generation:
            if asked != spec.version:
                failures.append(f"{view.key}: its target was changed to {asked or 'another request'} by another "
                                "writer")
                record.state = "failed"
                continue
            record.generation = generation
        if not record.generation:
            pending.append(view)
            continue
        state, reason = view.progress(spec.sidecar, record.generation, spec.version)
        if state == "done":
            record.state, record.restarts = "done", view.restarts
        elif state in ("failed", "blocked"):
            record.state = state
            failures.append(f"{view.key}: {state}: {reason}")
        else:
            in_flight[view.workload] = in_flight.get(view.workload, 0) + 1
    if failures:
        _fail(work, batch, "operation", f"{len(failures)} pod{'s' if len(failures) != 1 else ''} not changed: "
                                        + "; ".join(failures[:5]))
        return True
    if pending and _held(work) is None:
        workload_pods: dict[str, int] = {}
        for view in work.views.values():
            workload_pods[view.workload] = workload_pods.get(view.workload, 0) + 1
        records = {r.pod: r for r in batch.pods}
        for view in writable(pending, in_flight, workload_pods, spec.max_unavailable.allowed):
            target = next_target(view.target, spec.sidecar, SidecarTarget(version=spec.version, action=spec.action))
            records[view.key].generation = target.generation
            work.writes.append(Write(view.key, view.namespace, view.name, view.resource_version, target.to_json(),
                                     target.generation))
    waiting = [r for r in batch.pods if r.state == "pending"]
    if waiting:
        done = len(batch.pods) - len(waiting)
        phase = _progressing(work, UPDATING, f"batch {batch.index + 1}/{len(spec.batches)}: {done}/"
                                             f"{len(batch.pods)} pods settled")
        held = _held(work)
        work.set_phase(*phase, deadline=held[2] if held and phase[0] == PAUSED else None,
                       event="RolloutPaused" if phase[0] == PAUSED else None)
        work.wake.append(work.poll)
        if held is not None:
            work.at(held[2])
        return True
    batch.settled = work.text_now
    bake = spec.batches[batch.index].bake if batch.index < len(spec.batches) else 0.0
    batch.bake_until = stamp(work.now + dt.timedelta(seconds=bake))
    batch.next_measurement = batch.bake_until
    return False


def _roll_back(work: _Work) -> None:
    """Give the last batch's changed pods their previous version back, and follow until each has it."""
    spec = work.spec
    batch = work.batches[-1] if work.batches else None
    open_ = 0
    failed: list[str] = []
    if batch is not None:
        for record in batch.pods:
            if not record.generation or record.previous is None or record.rollback_state in (
                    "done", "gone", "failed", "blocked"):
                continue
            view = work.views.get(record.pod)
            if view is None or view.deleting or (record.uid and not view.uid.startswith(record.uid)):
                record.rollback_state = "gone"
                continue
            generation, asked = view.asks(spec.sidecar)
            if record.rollback and generation < record.rollback:
                record.rollback = 0
            if not record.rollback and generation > record.generation and asked == record.previous:
                record.rollback = generation
            if not record.rollback:
                target = next_target(view.target, spec.sidecar, SidecarTarget(version=record.previous))
                record.rollback, record.rollback_state = target.generation, "pending"
                work.writes.append(Write(view.key, view.namespace, view.name, view.resource_version,
                                         target.to_json(), target.generation, rollback=True))
                open_ += 1
                continue
            state, reason = view.progress(spec.sidecar, record.rollback, record.previous)
            record.rollback_state = state
            if state == "pending":
                open_ += 1
            elif state != "done":
                failed.append(f"{view.key}: {reason}")
    phase = work.status.get("phase") or FAILED_PHASE
    base = str(work.status.get("message") or "").split("; rolled back")[0].split("; rolling back")[0]
    if open_:
        work.set_phase(phase, ROLLING_BACK, str(work.status.get("reason") or "Aborted"),
                       base + f"; rolling back: {open_} pods pending")
        work.wake.append(work.poll)
        return
    rolled = sum(1 for r in (batch.pods if batch else ()) if r.rollback_state == "done")
    note = f"; rolled back: {rolled} pods on their previous version" + (
        f", {len(failed)} could not be: {'; '.join(failed[:5])}" if failed else "")
    work.status["finished"] = work.text_now
    work.set_phase(phase, ROLLED_BACK, str(work.status.get("reason") or "Aborted"), base + note,
                   event="RolloutRolledBack", type_="Warning" if failed else "Normal")
