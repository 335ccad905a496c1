"""Per-node sums of what pods cost, kept incrementally and exactly.

The extender answers every scheduling cycle from these sums, so they are
plain ``int`` nano-units (the unit of :class:`policy.quantity.Quantity`) in
``__slots__`` objects: no ``Quantity`` or dict on the hot path, and nothing
of the pod kept but its :class:`~policy.pod_entry.PodEntry`. A fleet
of 250,000 pods then costs a few hundred bytes each, not the tens of
kilobytes of the pod dict.

Every change is a remove of the pod's old entry and an add of its new one,
keyed by uid, so a MODIFIED event, a relist, a bind the extender made itself
and the watch confirming it all go through the same two operations and the
sums cannot drift.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from policy.pod_entry import PodEntry
from policy.quantity import Quantity
from policy.resources import RESOURCES

#: The resources the hot path is written for; ``policy.resources`` is the source.
assert RESOURCES == ("cpu", "memory")

#: What a scorer derived from a node's figures, kept on the node until they change
#: (:meth:`extender.scoring.Scorer.memo` says what each value means):
#: ``(scorer, base_cpu, base_memory, a, b, den, cap_cpu, cap_memory, room_cpu, room_memory,
#: free_cpu, free_memory)``. A plain tuple of that exact shape, not a NamedTuple: the
#: scorer unpacks it for thousands of nodes a cycle, and a tuple subclass unpacks three
#: times slower.
NodeMemo = tuple[object, int, int, int, int, int, int, int, int, int, int, int]
#: Positions in a :data:`NodeMemo` read on their own.
MEMO_CAP_CPU: Final = 6
MEMO_CAP_MEMORY: Final = 7
#: ``cap − exposure(node)``: the exposure a pod may still add under the ceiling.
MEMO_ROOM_CPU: Final = 8
MEMO_ROOM_MEMORY: Final = 9
#: ``allocatable − Σ R(node)``: the requests a pod may still add.
MEMO_FREE_CPU: Final = 10
MEMO_FREE_MEMORY: Final = 11


class NodeState:
    """One node: its allocatable and the sums over the pods that hold it.

    A node may be referenced by pods before its own object is seen (the pod
    and node watches are independent); it then exists with ``known`` false
    and zero allocatable, and the scorer treats it as unknown.
    """

    __slots__ = (
        "name", "known", "alloc_cpu", "alloc_memory",
        "req_cpu", "req_memory", "exp_cpu", "exp_memory", "pods", "leak", "memo",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.known = False
        self.alloc_cpu = 0
        self.alloc_memory = 0
        self.req_cpu = 0
        self.req_memory = 0
        self.exp_cpu = 0
        self.exp_memory = 0
        self.pods = 0
        #: namespace -> [cpu, memory] leak, only for namespaces that leak here.
        self.leak: dict[str, list[int]] | None = None
        #: What a scorer derived from these figures (:meth:`extender.scoring.Scorer.memo`);
        #: cleared on every change, so it is recomputed only for nodes that changed.
        self.memo: NodeMemo | None = None

    def add(self, e: PodEntry) -> None:
        """Count pod ``e`` on this node."""
        self.memo = None
        self.req_cpu += e.cpu
        self.req_memory += e.memory
        self.exp_cpu += e.exp_cpu
        self.exp_memory += e.exp_memory
        self.pods += 1
        if e.leak_cpu or e.leak_memory:
            if self.leak is None:
                self.leak = {}
            sums = self.leak.setdefault(e.namespace, [0, 0])
            sums[0] += e.leak_cpu
            sums[1] += e.leak_memory

    def remove(self, e: PodEntry) -> None:
        """Stop counting pod ``e`` on this node."""
        self.memo = None
        self.req_cpu -= e.cpu
        self.req_memory -= e.memory
        self.exp_cpu -= e.exp_cpu
        self.exp_memory -= e.exp_memory
        self.pods -= 1
        if (e.leak_cpu or e.leak_memory) and self.leak is not None:
            sums = self.leak[e.namespace]
            sums[0] -= e.leak_cpu
            sums[1] -= e.leak_memory
            if not sums[0] and not sums[1]:
                del self.leak[e.namespace]

    @property
    def empty(self) -> bool:
        """Neither a Node object nor pods: the state can go."""
        return not self.known and self.pods == 0

    def to_dict(self) -> dict[str, object]:
        """The node's figures as canonical quantity strings, for ``/debug/nodes`` and ``simulate``."""
        cpu = lambda n: Quantity(n).format()  # noqa: E731
        mem = lambda n: Quantity(n, "BinarySI").format()  # noqa: E731
        return {
            "name": self.name,
            "known": self.known,
            "pods": self.pods,
            "allocatable": {"cpu": cpu(self.alloc_cpu), "memory": mem(self.alloc_memory)},
            "requested": {"cpu": cpu(self.req_cpu), "memory": mem(self.req_memory)},
            "exposure": {"cpu": cpu(self.exp_cpu), "memory": mem(self.exp_memory)},
            "leak": {ns: {"cpu": cpu(c), "memory": mem(m)} for ns, (c, m) in sorted((self.leak or {}).items())},
        }


@dataclass
class Totals:
    """Cluster-wide sums, kept with the per-node ones, for metrics."""

    exp_cpu: int = 0
    exp_memory: int = 0
    leak_cpu: int = 0
    leak_memory: int = 0
    #: Pods counted on some node.
    placed: int = 0


class Accounting:
    """Pods by uid and nodes by name; every mutation keeps both consistent."""

    __slots__ = ("nodes", "pods", "totals")

    def __init__(self) -> None:
        self.nodes: dict[str, NodeState] = {}
        #: Pods known, bound or pending; finished pods are dropped.
        self.pods: dict[str, PodEntry] = {}
        self.totals = Totals()

    # -- nodes ------------------------------------------------------------
    def node(self, name: str) -> NodeState:
        """The state of node ``name``, created when first referenced."""
        state = self.nodes.get(name)
        if state is None:
            state = self.nodes[name] = NodeState(sys.intern(name))
        return state

    def set_node(self, name: str, alloc_cpu: int, alloc_memory: int) -> None:
        """The Node object is seen: its allocatable, in nano-units."""
        state = self.node(name)
        state.known = True
        state.alloc_cpu = alloc_cpu
        state.alloc_memory = alloc_memory
        state.memo = None

    def drop_node(self, name: str) -> None:
        """The node object is gone; its pods still count until they go too."""
        state = self.nodes.get(name)
        if state is None:
            return
        state.known = False
        state.alloc_cpu = state.alloc_memory = 0
        state.memo = None
        if state.empty:
            del self.nodes[name]

    def known_nodes(self) -> Iterator[NodeState]:
        """The nodes whose Node object is seen."""
        return (s for s in self.nodes.values() if s.known)

    # -- pods ---------------------------------------------------------------
    def put(self, uid: str, entry: PodEntry | None) -> None:
        """Replace whatever ``uid`` held with ``entry`` (``None``: the pod is gone or finished)."""
        old = self.pods.pop(uid, None)
        if old is not None and old.node is not None:
            self._unplace(old)
        if entry is None:
            return
        self.pods[uid] = entry
        if entry.node is not None:
            self.node(entry.node).add(entry)
            t = self.totals
            t.exp_cpu += entry.exp_cpu
            t.exp_memory += entry.exp_memory
            t.leak_cpu += entry.leak_cpu
            t.leak_memory += entry.leak_memory
            t.placed += 1

    def _unplace(self, old: PodEntry) -> None:
        assert old.node is not None
        state = self.nodes[old.node]
        state.remove(old)
        if state.empty:
            del self.nodes[old.node]
        t = self.totals
        t.exp_cpu -= old.exp_cpu
        t.exp_memory -= old.exp_memory
        t.leak_cpu -= old.leak_cpu
        t.leak_memory -= old.leak_memory
        t.placed -= 1

    def get(self, uid: str) -> PodEntry | None:
        """The entry of pod ``uid``, if known."""
        return self.pods.get(uid)
