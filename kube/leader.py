"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Several replicas of one process run; one of them, the leader, acts, and the
others stand by, ready to take over. This is client-go's
``tools/leaderelection`` with a Lease lock, reduced to asyncio over
:class:`kube.client.ApiClient`:

* **Acquire.** Every ``retry_period`` (jittered up to 1.2 times, so replicas
  do not ask in step) a candidate reads the Lease. It may take it when the
  Lease does not exist (it creates it), when its holder is empty (released),
  or when the record has not changed for ``lease_duration`` *as measured on
  the candidate's own clock* since it last saw it change: the holder's
  ``renewTime`` is never compared with the local clock, so clock skew
  between nodes cannot hand the lease over early.
* **Renew.** The leader writes a new ``renewTime`` every ``retry_period``.
  If no renewal has succeeded for ``renew_deadline`` it stops leading at
  once (:attr:`LeaderElector.leading` turns false by the clock alone, even if
  the loop is stuck), which is before any other candidate may take over,
  since ``renew_deadline < lease_duration``.
* **Writes are conditional.** Every update carries the ``resourceVersion``
  it read, so of two candidates that saw the same expired Lease only one
  wins (the other gets 409 Conflict and tries again later); a create that
  finds the Lease already made fails the same way.
* **Record.** ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``
  and ``renewTime`` (MicroTime), ``leaseTransitions``, incremented each time
  the holder changes.
* **Release.** On a clean stop the leader writes the Lease with an empty
  holder and ``leaseDurationSeconds: 1``, so a standby takes over at its next
  retry instead of waiting out the lease.

When leadership is lost a leader goes back to campaigning; a process that
must not outlive its leadership (client-go's usual ``OnStoppedLeading``:
exit) says so in its ``on_stopped_leading``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kube.client import ApiClient, ApiError, JsonObject

log = logging.getLogger(__name__)

#: client-go's ``JitterFactor``: a retry waits between 1 and 2.2 retry periods.
JITTER = 1.2
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def micro_time(moment: dt.datetime) -> str:
    """A ``metav1.MicroTime`` as the apiserver writes it (``2006-01-02T15:04:05.000000Z``)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease, who this candidate is, and client-go's three durations (seconds; its defaults)."""

    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs an identity")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be longer than the renew deadline")
        if not self.renew_deadline > JITTER * self.retry_period:
            raise ValueError(f"the renew deadline must be longer than {JITTER} times the retry period")
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease, as leader election reads and writes it."""

    holder: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: JsonObject) -> LeaseRecord:
        """The record of a Lease object (missing fields as the API leaves them out)."""
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        """The Lease ``spec`` of this record."""
        out: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time is not None:
            out["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            out["renewTime"] = self.renew_time
        return out


Callback = Callable[[], None]


class LeaderElector:
    """One candidate for one Lease: :meth:`run` campaigns, leads, renews, and releases on stop."""

    def __init__(
        self,
        client: ApiClient,
        config: LeaderElectionConfig,
        *,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.client = client
        self.config = config
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.clock = clock
        self.wall_clock = wall_clock
        self._path = LEASES.format(namespace=config.namespace)
        #: The record last read or written, and when (local monotonic clock) it last changed.
        self.observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._observed_version = ""
        #: When the last successful renewal was *sent* (monotonic); None while not leading.
        self._renewed_at: float | None = None
        self._was_leading = False
        self._changed = asyncio.Event()

    # -- state ------------------------------------------------------------------
    @property
    def leading(self) -> bool:
        """True while this candidate holds the Lease and renewed it within the renew deadline."""
        renewed = self._renewed_at
        return renewed is not None and self.clock() - renewed < self.config.renew_deadline

    @property
    def leader(self) -> str:
        """The holder this candidate last saw ('' when none)."""
        return self.observed.holder if self.observed is not None else ""

    async def wait_leading(self) -> None:
        """Return once this candidate leads (a controller's loop starts after this)."""
        while not self.leading:
            await self._changed.wait()

    def _set_leading(self, renewed_at: float | None) -> None:
        if self._was_leading and not self.leading:
            # Lapsed by the clock since the loop last looked: that is a loss, even if renewed now.
            self._flip(False)
        self._renewed_at = renewed_at
        if self.leading != self._was_leading:
            self._flip(self.leading)

    def _flip(self, now_leading: bool) -> None:
        self._was_leading = now_leading
        self._changed.set()
        self._changed = asyncio.Event()
        if now_leading:
            log.info("leading: lease %s/%s acquired as %s", self.config.namespace, self.config.name,
                     self.config.identity)
            if self.on_started_leading is not None:
                self.on_started_leading()
        else:
            log.warning("no longer leading: lease %s/%s", self.config.namespace, self.config.name)
            if self.on_stopped_leading is not None:
                self.on_stopped_leading()

    def _observe(self, record: LeaseRecord, version: str, now: float) -> None:
        if record != self.observed:
            if self.on_new_leader is not None and record.holder and record.holder != self.leader:
                self.on_new_leader(record.holder)
            self.observed = record
            self._observed_at = now
        self._observed_version = version

    # -- one attempt ---------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's ``tryAcquireOrRenew``: True when this candidate holds the Lease now."""
        config = self.config
        sent = self.clock()
        stamp = micro_time(self.wall_clock())
        timeout = max(1.0, config.retry_period)
        mine = LeaseRecord(config.identity, max(1, round(config.lease_duration)), stamp, stamp, 0)
        try:
            lease = await self.client.request("GET", f"{self._path}/{config.name}", timeout=timeout)
        except ApiError as exc:
            if exc.status != 404:
                log.info("reading lease %s/%s: %s", config.namespace, config.name, exc)
                return False
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": config.name, "namespace": config.namespace},
                "spec": mine.spec(),
            }
            try:
                created = await self.client.request("POST", self._path, body, timeout=timeout)
            except ApiError as exc2:
                log.info("creating lease %s/%s: %s", config.namespace, config.name, exc2)
                return False
            self._observe(mine, str((created.get("metadata") or {}).get("resourceVersion") or ""), sent)
            self._set_leading(sent)
            return True

        now = self.clock()
        old = LeaseRecord.of(lease)
        meta = lease.get("metadata") or {}
        self._observe(old, str(meta.get("resourceVersion") or ""), now)
        held_by_other = (
            old.holder != ""
            and old.holder != config.identity
            and self._observed_at + config.lease_duration > now
        )
        if held_by_other:
            self._set_leading(None)
            return False
        if old.holder == config.identity:
            record = LeaseRecord(config.identity, mine.lease_duration_seconds, old.acquire_time or stamp, stamp,
                                 old.transitions)
        else:
            record = LeaseRecord(config.identity, mine.lease_duration_seconds, stamp, stamp, old.transitions + 1)
        update = {**lease, "metadata": {**meta, "resourceVersion": self._observed_version}, "spec": record.spec()}
        try:
            written = await self.client.request("PUT", f"{self._path}/{config.name}", update, timeout=timeout)
        except ApiError as exc:
            # 409: another candidate wrote first; it leads, and this one reads again next time.
            log.info("updating lease %s/%s: %s", config.namespace, config.name, exc)
            return False
        self._observe(record, str((written.get("metadata") or {}).get("resourceVersion") or ""), sent)
        self._set_leading(sent)
        return True

    async def release(self) -> bool:
        """Give the Lease up (empty holder, 1 s duration) if this candidate holds it; True when it did."""
        if self.observed is None or self.observed.holder != self.config.identity or self._renewed_at is None:
            return False
        config = self.config
        stamp = micro_time(self.wall_clock())
        record = LeaseRecord("", 1, stamp, stamp, self.observed.transitions)
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": config.name, "namespace": config.namespace,
                         "resourceVersion": self._observed_version},
            "spec": record.spec(),
        }
        try:
            await self.client.request("PUT", f"{self._path}/{config.name}", body,
                                      timeout=max(1.0, config.retry_period))
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("releasing lease %s/%s: %s", config.namespace, config.name, exc)
            self._set_leading(None)
            return False
        self.observed = record
        self._set_leading(None)
        log.info("released lease %s/%s", config.namespace, config.name)
        return True

    # -- the loop ------------------------------------------------------------------
    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("lease %s/%s: %s: %s", self.config.namespace, self.config.name, type(exc).__name__, exc)
            return False

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        """Sleep, or return True early when ``stop`` is set."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, seconds))
        return stop.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead and renew until ``stop`` is set; then release the Lease if held."""
        config = self.config
        try:
            while not stop.is_set():
                # Campaign: try, then wait a jittered retry period.
                if not await self._attempt():
                    self._set_leading(None)
                    if await self._sleep(config.retry_period * (1 + random.random() * JITTER), stop):
                        break
                    continue
                # Lead: renew every retry period; give up once the renew deadline passes without success.
                while not stop.is_set():
                    if await self._sleep(config.retry_period, stop):
                        break
                    while not await self._attempt():
                        if not self.leading:
                            break
                        if await self._sleep(config.retry_period, stop):
                            break
                    if not self.leading:
                        self._set_leading(None)
                        break
        finally:
            if self.leading:
                with contextlib.suppress(asyncio.CancelledError):
                    await self.release()
            self._set_leading(None)
