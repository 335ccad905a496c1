"""Remember the engine's answer for pods the webhook has just seen.

A Deployment scaled to 50 replicas makes its ReplicaSet create 50 pods that
are byte-for-byte the same object (``generateName``, no name, same labels and
spec); only the review's ``uid`` differs. The engine is a pure function of
the pod, the namespace (name, labels, namespace policy), the policy and the
clock, and the clock matters only at version-rule expiry times. So the answer
is kept, keyed by all of those, and dropped when the policy object changes or
when the engine said its answer expires (the pod's winning version rule expires). A hit costs one serialisation and one hash of the pod
instead of a full injection.

Two things differ between replicas by the time the webhook sees them, and
the key leaves both out. ``metadata.managedFields``: the apiserver stamps them
with the time of the request (to the second); the engine never reads them (a
test holds it to that). The service-account token volume: the ServiceAccount
admission plugin names it ``kube-api-access-<5 random characters>`` in each
pod; the key writes every such name as ``kube-api-access-*****``. The engine
never looks at that name except to avoid clashing with it, and a verdict whose
patch mentions any ``kube-api-access-`` name is not kept, so a replayed patch
can never carry another pod's volume name.

Only the engine's verdict is kept (the base64 patch, warnings, what to
count), never the response: each review still gets its own ``uid`` and
``apiVersion``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from policy.model import NamespacePolicy, Policy

DEFAULT_ENTRIES = 512
#: Pods larger than this (serialised) are not cached: rare, and they would crowd out the rest.
MAX_POD_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the engine decided for one pod, ready to answer any number of reviews with."""

    injected: bool
    #: base64 of the JSONPatch (``None`` when there is no patch).
    patch: str | None
    warnings: tuple[str, ...]
    skip_label: str
    skip_reason: str
    #: ``(sidecar, version, mode)`` per injected sidecar, for metrics.
    sidecars: tuple[tuple[str, str, str], ...]
    namespace_policy: NamespacePolicy | None
    #: Epoch seconds after which the engine's answer for this pod may differ (a winning rule expires).
    valid_until: float = float("inf")


Key = tuple[str, Any, int, bytes]

#: The projected token volume the ServiceAccount admission plugin adds, random per pod.
_TOKEN_VOLUME = re.compile(rb"kube-api-access-[a-z0-9]{5}")
_TOKEN_VOLUME_PREFIX = b"kube-api-access-"


class AnswerCache:
    """The engine's verdicts for identical pods under one policy, least recently used dropped first."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[Key, Verdict] = OrderedDict()
        self._policy: Policy | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def key(
        self,
        pod: Mapping[str, Any],
        namespace: str,
        labels: Mapping[str, str] | None,
        namespace_policy: NamespacePolicy | None,
    ) -> Key | None:
        """The cache key, or ``None`` for a pod too large to be worth keeping."""
        meta = pod.get("metadata")
        if isinstance(meta, dict) and "managedFields" in meta:
            pod = {**pod, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        try:
            raw = orjson.dumps(pod)
        except (TypeError, orjson.JSONEncodeError):
            return None
        if len(raw) > MAX_POD_BYTES:
            return None
        if _TOKEN_VOLUME_PREFIX in raw:
            raw = _TOKEN_VOLUME.sub(b"kube-api-access-*****", raw)
        frozen_labels = None if labels is None else tuple(sorted(labels.items()))
        return namespace, frozen_labels, id(namespace_policy), hashlib.blake2b(raw, digest_size=20).digest()

    def get(self, key: Key, policy: Policy, namespace_policy: NamespacePolicy | None) -> Verdict | None:
        """The verdict remembered for ``key``, if any, still valid under ``policy``."""
        if policy is not self._policy:
            self._reset(policy)
        verdict = self._items.get(key)
        # id() of a namespace policy can be reused once it is gone: the entry holds the object to compare.
        if verdict is None or verdict.namespace_policy is not namespace_policy:
            self.misses += 1
            return None
        if time.time() >= verdict.valid_until:  # the engine said when its answer expires
            del self._items[key]
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return verdict

    def put(self, key: Key, policy: Policy, verdict: Verdict) -> None:
        """Remember ``verdict`` for ``key`` (unless its patch is specific to one pod)."""
        if verdict.patch is not None and _mentions_token_volume(verdict.patch):
            return  # the patch depends on this pod's own volume name: never replay it for another
        if policy is not self._policy:
            self._reset(policy)
        self._items[key] = verdict
        if len(self._items) > self.entries:
            self._items.popitem(last=False)

    def _reset(self, policy: Policy) -> None:
        self._items.clear()
        self._policy = policy


def _base64_forms(needle: bytes) -> tuple[str, ...]:
    """What ``needle`` looks like inside any base64 text, at each of its three byte alignments.

    Base64 character ``i`` carries bits ``6i .. 6i+6`` of the bytes; those that
    carry only the needle's bits are the same wherever it stands at that
    alignment, so a text that decodes to bytes containing the needle contains
    one of these. (A match elsewhere only makes the check refuse to keep a verdict.)
    """
    forms = []
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + needle).decode("ascii")
        forms.append(text[-(-8 * shift // 6):8 * (shift + len(needle)) // 6])
    return tuple(forms)


_TOKEN_VOLUME_FORMS = _base64_forms(_TOKEN_VOLUME_PREFIX)


def _mentions_token_volume(encoded_patch: str) -> bool:
    """Whether the patch names a token volume, read in its base64 form (decoding it cost more than the rest)."""
    return any(form in encoded_patch for form in _TOKEN_VOLUME_FORMS)
