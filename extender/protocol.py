"""The wire format of ``k8s.io/kube-scheduler/extender/v1``, bytes in and bytes out.

The Go types carry no JSON tags, so the keys are the Go field names
(``Pod``, ``Nodes``, ``NodeNames``, ``FailedNodes``,
``FailedAndUnresolvableNodes``, ``Error``, ``Host``, ``Score``, and for bind
``PodName``, ``PodNamespace``, ``PodUID``, ``Node``). With
``nodeCacheCapable: true`` the scheduler sends ``NodeNames`` and reads
``NodeNames`` back; otherwise it sends a ``NodeList`` in ``Nodes`` and reads
the passing nodes back from ``Nodes.items``. A filter answer must never name
a node it was not asked about: the scheduler rejects the whole answer.

Failure messages go out with ``%`` spelt ``percent``: kube-scheduler passes
the combined message to ``Eventf`` as a *format string*, so ``13.1% of``
would reach ``kubectl describe pod`` as ``13.1%!o(MISSING)f``.

Decoding validates just enough to answer a malformed body with a message
(:class:`ProtocolError`, served as 400) instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

JsonObject = dict[str, Any]


class ProtocolError(ValueError):
    """A request body the extender cannot read; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    """A filter or prioritize call: the pod, and the candidate node names."""

    pod: JsonObject
    #: Candidate node names, in the order the scheduler sent them.
    names: list[str]
    #: The full node objects when the scheduler is not ``nodeCacheCapable``, else ``None``.
    nodes: list[JsonObject] | None

    @property
    def node_cache_capable(self) -> bool:
        """Whether only node names travel (``nodeCacheCapable: true``)."""
        return self.nodes is None


@dataclass(frozen=True, slots=True)
class BindingArgs:
    """A bind call: the pod and the node chosen."""

    pod_name: str
    pod_namespace: str
    pod_uid: str
    node: str


def _load(body: bytes) -> Any:
    if not body:
        raise ProtocolError("empty request body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"request body is not JSON: {exc}") from None


def decode_args(body: bytes) -> ExtenderArgs:
    """``ExtenderArgs`` for filter and prioritize."""
    data = _load(body)
    if not isinstance(data, Mapping):
        raise ProtocolError("ExtenderArgs must be a JSON object")
    pod = data.get("Pod")
    if not isinstance(pod, dict):
        raise ProtocolError("ExtenderArgs.Pod must be a Pod object")
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise ProtocolError("ExtenderArgs.Pod.metadata.name is required")
    if pod.get("spec") is not None and not isinstance(pod.get("spec"), Mapping):
        raise ProtocolError("ExtenderArgs.Pod.spec must be an object")
    node_names = data.get("NodeNames")
    node_list = data.get("Nodes")
    if node_names is not None:
        # set(map(type, ...)): the check in C, not a Python step per name (5,000 of them a cycle).
        if not isinstance(node_names, list) or not set(map(type, node_names)) <= {str}:
            raise ProtocolError("ExtenderArgs.NodeNames must be a list of strings")
        return ExtenderArgs(pod, node_names, None)
    if node_list is not None:
        if not isinstance(node_list, Mapping):
            raise ProtocolError("ExtenderArgs.Nodes must be a NodeList object")
        items = node_list.get("items") or []
        if not isinstance(items, list):
            raise ProtocolError("ExtenderArgs.Nodes.items must be a list")
        names: list[str] = []
        for i, node in enumerate(items):
            node_meta = node.get("metadata") if isinstance(node, Mapping) else None
            name = node_meta.get("name") if isinstance(node_meta, Mapping) else None
            if not isinstance(name, str):
                raise ProtocolError(f"ExtenderArgs.Nodes.items[{i}].metadata.name is required")
            names.append(name)
        return ExtenderArgs(pod, names, items)
    raise ProtocolError("ExtenderArgs needs NodeNames (nodeCacheCapable) or Nodes")


def decode_binding(body: bytes) -> BindingArgs:
    """``ExtenderBindingArgs`` for bind."""
    data = _load(body)
    if not isinstance(data, Mapping):
        raise ProtocolError("ExtenderBindingArgs must be a JSON object")
    values: list[str] = []
    for key in ("PodName", "PodNamespace", "PodUID", "Node"):
        value = data.get(key)
        if not isinstance(value, str) or (not value and key != "PodUID"):
            raise ProtocolError(f"ExtenderBindingArgs.{key} must be a non-empty string")
        values.append(value)
    return BindingArgs(*values)


def scheduler_text(message: str) -> str:
    """``message`` safe to pass through a Go format string (see the module docstring)."""
    return message.replace("%", " percent") if "%" in message else message


def _scheduler_texts(messages: Mapping[str, str]) -> Mapping[str, str]:
    """``messages`` with every value :func:`scheduler_text`, each distinct one escaped once.

    A cycle failing thousands of nodes shares a few message objects among them
    (:meth:`extender.scoring.Scorer.filter_groups`): looking at the distinct
    ones first spares a pass over every node when none has a ``%``.
    """
    distinct = set(messages.values())
    if not any("%" in v for v in distinct):
        return messages
    texts = {v: scheduler_text(v) for v in distinct}
    return {k: texts[v] for k, v in messages.items()}


def encode_filter(
    args: ExtenderArgs,
    passed: Sequence[str],
    failed: Mapping[str, str],
    unresolvable: Mapping[str, str],
    error: str = "",
) -> bytes:
    """``ExtenderFilterResult`` in the node mode the request used."""
    result: JsonObject = {
        "FailedNodes": _scheduler_texts(failed),
        "FailedAndUnresolvableNodes": _scheduler_texts(unresolvable),
        "Error": scheduler_text(error),
    }
    if args.nodes is None:
        result["NodeNames"] = list(passed)
        result["Nodes"] = None
    else:
        keep = set(passed)
        result["Nodes"] = {
            "apiVersion": "v1",
            "kind": "NodeList",
            "metadata": {},
            "items": [n for n, name in zip(args.nodes, args.names) if name in keep],
        }
        result["NodeNames"] = None
    return orjson.dumps(result)


def encode_filter_error(message: str) -> bytes:
    """A filter answer that fails the cycle with ``message`` (the scheduler retries the pod)."""
    return orjson.dumps({"Nodes": None, "NodeNames": None, "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": message})


def encode_priorities(hosts: Sequence[str], scores: Sequence[int]) -> bytes:
    """``HostPriorityList``."""
    return orjson.dumps([{"Host": h, "Score": s} for h, s in zip(hosts, scores)])


def encode_binding(error: str = "") -> bytes:
    """``ExtenderBindingResult``."""
    return orjson.dumps({"Error": error})


def encode_error(message: str) -> bytes:
    """The body of a 400: readable in the scheduler's log and shaped like every result."""
    return orjson.dumps({"Error": message})
