"""Which scheduler calls count, and which binds are allowed.

``POST /bind`` creates a Binding with the extender's own rights, so whoever
can call it could place any pod on any node. TLS with client certificates
(:mod:`extender.process`) decides *who* may call; this module decides *what*
a call may do, so that even an authenticated caller can only finish what a
scheduling cycle started:

* A **filter counts** only for a pod the extender's own watch knows as
  Pending and unbound (the live pod, not the copy in the request), whose
  ``spec.schedulerName`` is one this extender serves. Only a counted filter
  is remembered for bind, registers the pod as in flight (so the next cycle
  waits for its bind, :mod:`extender.inflight`) or undoes an assumed
  binding. A filter for a pod the watch has not shown yet is checked
  against the apiserver once (a GET), a few at a time: the watch may lag the
  scheduler's own informer by a moment.
* A **bind is refused** unless its ``PodUID`` names a pod a counted filter
  passed, recently (:data:`FILTER_TTL`), with the same namespace and name,
  still Pending and unbound, and onto a node that filter passed and that
  exists (the cache knows it, or the apiserver does).

What the filters passed is kept per pod uid, bounded in entries and in node
names held (a 5,000-node cycle passes thousands of names), oldest dropped
first: a bind whose filter was dropped is refused, and the scheduler tries
the pod again.
"""

from __future__ import annotations

import re
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from extender.protocol import BindingArgs

#: ``spec.schedulerName`` of a pod that names none (the API defaults it).
DEFAULT_SCHEDULER = "default-scheduler"
#: The schedulers served unless configured: the main one and meshfit's own.
DEFAULT_SCHEDULERS: tuple[str, ...] = (DEFAULT_SCHEDULER, "meshfit-scheduler")
#: How long a filter's verdict may be used by a bind (kube-scheduler binds right after).
FILTER_TTL = 30.0
#: Pods whose filter verdicts are kept at once.
MAX_FILTERED_PODS = 1024
#: Node names kept over all those verdicts (a few MiB of references at most).
MAX_FILTERED_NODES = 500_000
#: Apiserver lookups of pods the watch has not shown yet, at once; more are not counted.
MAX_LOOKUPS = 4
#: Uids a lookup found to be no Pending pod, remembered so that a repeated filter costs no second GET.
MAX_ABSENT = 4096
ABSENT_TTL = 60.0
#: A namespace or pod name as the API accepts it (DNS subdomain): nothing else goes into a lookup's path.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class PodIdentity(NamedTuple):
    """Who a Pending pod is, as the watch showed it."""

    namespace: str
    name: str
    scheduler: str


def pending_identity(pod: Mapping[str, Any]) -> PodIdentity | None:
    """The identity of a pod that is Pending and unbound, ``None`` for any other pod."""
    spec = pod.get("spec")
    status = pod.get("status")
    meta = pod.get("metadata")
    if not isinstance(spec, Mapping) or not isinstance(meta, Mapping):
        return None
    if spec.get("nodeName"):
        return None
    phase = status.get("phase") if isinstance(status, Mapping) else None
    if phase not in (None, "Pending"):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    scheduler = spec.get("schedulerName") or DEFAULT_SCHEDULER
    if not isinstance(name, str) or not isinstance(namespace, str) or not isinstance(scheduler, str):
        return None
    return PodIdentity(namespace, name, scheduler)


#: Fetches a pod by namespace and name; ``None`` when it does not exist.
PodLookup = Callable[[str, str], Awaitable["Mapping[str, Any] | None"]]
#: Whether a Node of that name exists.
NodeLookup = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Filtered:
    """What one counted filter passed for one pod."""

    identity: PodIdentity
    nodes: tuple[str, ...]
    deadline: float


class BindGuard:
    """The pending pods the watch shows, the filters that counted, and the checks binds must pass."""

    def __init__(
        self,
        schedulers: Collection[str] = DEFAULT_SCHEDULERS,
        *,
        lookup: PodLookup | None = None,
        node_lookup: NodeLookup | None = None,
        ttl: float = FILTER_TTL,
        max_pods: int = MAX_FILTERED_PODS,
        max_nodes: int = MAX_FILTERED_NODES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schedulers = frozenset(schedulers)
        self.lookup = lookup
        self.node_lookup = node_lookup
        self.ttl = ttl
        self.max_pods = max_pods
        self.max_nodes = max_nodes
        self.clock = clock
        #: uid -> identity of every pod the watch shows Pending and unbound.
        self.pending: dict[str, PodIdentity] = {}
        #: uid -> what its last counted filter passed, oldest first.
        self.filtered: OrderedDict[str, Filtered] = OrderedDict()
        self._nodes_held = 0
        self._lookups = 0
        #: uid -> until when a lookup's "no such Pending pod" holds (a uid is never reused).
        self._absent: OrderedDict[str, float] = OrderedDict()
        #: Filters that did not count, by reason; binds refused, by reason.
        self.uncounted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    # -- the watch --------------------------------------------------------------
    def observe(self, uid: str, identity: PodIdentity | None) -> None:
        """The watch's latest word on pod ``uid``: Pending and unbound (an identity), or not (``None``)."""
        if identity is None:
            self.pending.pop(uid, None)
        else:
            self.pending[uid] = identity

    def replace(self, pending: dict[str, PodIdentity]) -> None:
        """A relist: these are all the Pending, unbound pods."""
        self.pending = pending

    # -- filter -----------------------------------------------------------------
    async def admit_filter(self, uid: str, pod: Mapping[str, Any]) -> PodIdentity | None:
        """The live identity of the pod a filter is about when the filter counts, else ``None``."""
        meta = pod.get("metadata") or {}
        claimed = (meta.get("namespace") or "default", meta.get("name"))
        identity = self.pending.get(uid)
        if identity is None:
            identity = await self._look_up(uid, *claimed)
            if identity is None:
                return None
        if (identity.namespace, identity.name) != claimed:
            self.uncounted["not-that-pod"] += 1
            return None
        if identity.scheduler not in self.schedulers:
            self.uncounted["other-scheduler"] += 1
            return None
        return identity

    async def _look_up(self, uid: str, namespace: str, name: object) -> PodIdentity | None:
        if (self.lookup is None or not isinstance(name, str) or not isinstance(namespace, str) or not uid
                or "/" in uid or not _OBJECT_NAME.fullmatch(name) or not _OBJECT_NAME.fullmatch(namespace)):
            self.uncounted["unknown-pod"] += 1
            return None
        now = self.clock()
        absent = self._absent.get(uid)
        if absent is not None and absent > now:
            self.uncounted["unknown-pod"] += 1
            return None
        if self._lookups >= MAX_LOOKUPS:
            self.uncounted["lookups-busy"] += 1
            return None
        self._lookups += 1
        try:
            live = await self.lookup(namespace, name)
        except Exception:  # the apiserver unreachable: the filter does not count, nothing more
            self.uncounted["lookup-failed"] += 1
            return None
        finally:
            self._lookups -= 1
        if live is None or (live.get("metadata") or {}).get("uid") != uid:
            self.uncounted["unknown-pod"] += 1
            self._remember_absent(uid, now)
            return None
        identity = pending_identity(live)
        if identity is None:
            self.uncounted["not-pending"] += 1
            self._remember_absent(uid, now)
            return None
        # Until the watch says otherwise (it will, in a moment, with the same pod).
        self.pending.setdefault(uid, identity)
        return identity

    def _remember_absent(self, uid: str, now: float) -> None:
        # A quorum read said no: that uid is no Pending pod now, and uids are never reused.
        self._absent.pop(uid, None)
        self._absent[uid] = now + ABSENT_TTL
        while len(self._absent) > MAX_ABSENT:
            self._absent.popitem(last=False)

    def passed(self, uid: str, identity: PodIdentity, nodes: list[str]) -> None:
        """A counted filter passed ``nodes`` for pod ``uid``: its bind may choose one of them."""
        self._drop(uid)
        record = Filtered(identity, tuple(nodes), self.clock() + self.ttl)
        self.filtered[uid] = record
        self._nodes_held += len(record.nodes)
        while self.filtered and (len(self.filtered) > self.max_pods or self._nodes_held > self.max_nodes):
            self._drop(next(iter(self.filtered)))

    def _drop(self, uid: str) -> Filtered | None:
        record = self.filtered.pop(uid, None)
        if record is not None:
            self._nodes_held -= len(record.nodes)
        return record

    # -- bind -------------------------------------------------------------------
    async def check_bind(self, args: BindingArgs, node_known: Callable[[str], bool]) -> str | None:
        """Why this bind is refused, ``None`` when it may go ahead (the filter's verdict is then used up)."""
        reason, message = self._verdict(args, node_known)
        if reason == "unknown-node" and self.node_lookup is not None:
            # The node watch may trail the scheduler's by a moment: ask the apiserver before refusing.
            try:
                if await self.node_lookup(args.node):
                    reason = None
            except Exception:  # unreachable: refused, and the scheduler tries the pod again
                pass
        if reason is None:
            self._drop(args.pod_uid)
            return None
        self.refused[reason] += 1
        return f"bind refused: {message}"

    def _verdict(self, args: BindingArgs, node_known: Callable[[str], bool]) -> tuple[str | None, str]:
        pod = f"{args.pod_namespace}/{args.pod_name}"
        uid = args.pod_uid
        if not uid:
            return "no-uid", f"pod {pod}: PodUID is empty"
        record = self.filtered.get(uid)
        if record is not None and record.deadline < self.clock():
            self._drop(uid)
            record = None
        if record is None:
            return "not-filtered", (f"pod {pod} (uid {uid}) was not filtered by this extender for a scheduler "
                                    f"it serves ({', '.join(sorted(self.schedulers))}) in the last {self.ttl:.0f}s")
        identity = record.identity
        if (identity.namespace, identity.name) != (args.pod_namespace, args.pod_name):
            return "not-that-pod", f"uid {uid} is pod {identity.namespace}/{identity.name}, not {pod}"
        live = self.pending.get(uid)
        if live is None:
            return "not-pending", f"pod {pod} (uid {uid}) is no longer Pending and unbound"
        if args.node not in record.nodes:
            return "node-not-filtered", f"node {args.node} was not among the nodes filter passed for pod {pod}"
        if not node_known(args.node):
            return "unknown-node", f"node {args.node} is not a node this extender knows"
        return None, ""
