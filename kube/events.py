"""Kubernetes Events about objects meshfit acts on, written so a person sees them with ``kubectl describe``.

A refused policy ConfigMap is the case that needs one most: the person who
edited it looks at the ConfigMap, not at a server's log or /readyz. Events
are best-effort (a failure to write one is logged, never raised) and
deduplicated: the same reason and message about the same object version is
written once, however many times the watch delivers it.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from kube.client import ApiClient, ApiError

log = logging.getLogger(__name__)

#: Events are capped at 1 KiB of message by convention (kubectl truncates too).
MAX_MESSAGE = 1024


class EventRecorder:
    """Writes core/v1 Events for one component; remembers the last ``memory`` it wrote to skip repeats."""

    def __init__(self, client: ApiClient, component: str, *, memory: int = 256) -> None:
        self.client = client
        self.component = component
        self.memory = memory
        self._written: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self.written = 0
        self.failed = 0

    async def record(self, obj: Mapping[str, Any], *, reason: str, message: str, type_: str = "Warning") -> bool:
        """One Event about ``obj`` (a dict as the API returns it); ``False`` when skipped or not written."""
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        key = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")), reason, message)
        if key in self._written:
            return False
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'object')}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind", ""),
                "namespace": namespace, "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "type": type_,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
        }
        try:
            await self.client.post_json(f"/api/v1/namespaces/{namespace}/events", event)
        except (ApiError, OSError, TimeoutError) as exc:
            self.failed += 1
            log.warning("could not write a %s Event about %s/%s: %s", reason, namespace, meta.get("name"), exc)
            return False
        self.written += 1
        self._written[key] = None
        if len(self._written) > self.memory:
            self._written.popitem(last=False)
        return True
