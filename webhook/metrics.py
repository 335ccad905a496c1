"""The webhook's metrics: what an operator pages on and what explains the page.

Counters that the request path bumps live here; everything else (policy
reloads, the revision in force, certificate expiry, cache and watch health)
is read from the live objects at scrape time, so there is one source of
truth and nothing to keep in step.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Iterable
from typing import Protocol

from serving.exposition import Labels, Registry
from webhook.answer_cache import AnswerCache
from serving.namespace_policies import LivePolicy

PREFIX = "meshfit_webhook_"

#: Seconds. Dense below 10 ms where an admission webhook should live.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class CertSource(Protocol):
    """The serving certificate as metrics and readiness read it (:class:`certs.reload.CertReloader`)."""

    reloads: int
    failures: int
    last_error: str
    #: Why the latest rotated pair was refused while the previous one keeps serving, else ``None``.
    refused: str | None
    serial: int | None
    not_after: dt.datetime | None

    @property
    def valid(self) -> bool:
        """Whether the certificate is within its validity period."""
        ...

    def seconds_until_expiry(self) -> float | None:
        """Seconds until the serving certificate expires, ``None`` when none is loaded."""
        ...


class Synced(Protocol):
    """A list/watch whose initial list readiness waits for (``kube.watch.ListWatch``)."""

    name: str

    @property
    def has_synced(self) -> bool:
        """Whether the initial list has arrived."""
        ...


class WatchSource(Synced, Protocol):
    """What metrics read of a list/watch: its sync state and its counters."""

    @property
    def stats(self) -> object:
        """The watch's counters (:class:`kube.watch.WatchStats`)."""
        ...


class WebhookMetrics:
    """Every series ``/metrics`` shows, in one registry."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self.requests = r.counter(
            PREFIX + "requests_total",
            "Admission requests by result (injected, skipped, passed, denied, admitted_on_error, no_policy, "
            "bad_request, unsupported_media_type, too_large).",
            ("result",),
        )
        self.injections = r.counter(
            PREFIX + "injections_total", "Sidecars injected, by sidecar, version and accounting mode.",
            ("sidecar", "version", "mode"),
        )
        self.skips = r.counter(PREFIX + "skips_total", "Pod CREATEs admitted without injection, by reason.", ("reason",))
        self.errors = r.counter(
            PREFIX + "errors_total",
            "Failures: engine (the engine could not handle a pod), internal (a bug), client (a bad request).",
            ("kind",),
        )
        self.latency = r.histogram(
            PREFIX + "request_duration_seconds", "Time from reading the request to the answer being built, /mutate only.",
            LATENCY_BUCKETS,
        )
        self.in_flight = 0
        r.callback(PREFIX + "requests_in_flight", "Admission requests being answered now.", lambda: [((), self.in_flight)])

    def observe_policy(self, live: LivePolicy) -> None:
        """Expose the policy in force and its update counts."""
        r = self.registry
        r.callback(
            PREFIX + "policy_reloads_total",
            "Policy updates offered, by result (success includes the first load).",
            lambda: [(("success",), live.loads), (("invalid",), live.rejections)],
            ("result",),
            kind="counter",
        )
        r.callback(
            PREFIX + "policy_last_update_invalid",
            "1 while the most recent policy update was refused (the last good policy still serves).",
            lambda: [((), 1 if live.rejected is not None else 0)],
        )
        r.callback(
            PREFIX + "policy_info",
            "The policy revision in force (value 1).",
            lambda: [((live.revision,), 1)] if live.revision else [],
            ("revision",),
        )
        r.callback(
            PREFIX + "policy_loaded_timestamp_seconds",
            "When the policy in force was loaded (Unix time).",
            lambda: [((), live.loaded_at)] if live.loaded_at else [],
        )
        r.callback(
            PREFIX + "namespace_policies",
            "Namespace policies in force.",
            lambda: [((), len(live.namespace_policies))],
        )
        r.callback(
            PREFIX + "namespace_policy_reloads_total",
            "Namespace policy updates, by result.",
            lambda: [(("success",), live.namespace_loads), (("invalid",), live.namespace_rejection_count)],
            ("result",),
            kind="counter",
        )
        r.callback(
            PREFIX + "namespace_policies_invalid",
            "Namespaces whose latest policy ConfigMap was refused.",
            lambda: [((), len(live.namespace_rejections))],
        )

    def observe_certs(self, certs: CertSource) -> None:
        """Expose the serving certificate's expiry and reloads."""
        def expiry() -> Iterable[tuple[Labels, float]]:
            seconds = certs.seconds_until_expiry()
            return [((), seconds)] if seconds is not None else []

        r = self.registry
        r.callback(
            PREFIX + "certificate_expiry_seconds",
            "Seconds until the serving certificate expires (negative once expired).",
            expiry,
        )
        r.callback(
            PREFIX + "certificate_not_after_timestamp_seconds",
            "When the serving certificate expires, as a Unix time.",
            lambda: [((), certs.not_after.timestamp())] if certs.not_after is not None else [],
        )
        r.callback(
            PREFIX + "certificate_rotation_refused",
            "1 while the certificate files hold a pair that was refused (expired, not yet valid, "
            "mismatched, unreadable) and the previous one keeps serving.",
            lambda: [((), 1 if certs.refused else 0)],
        )
        r.callback(
            PREFIX + "certificate_reloads_total",
            "Serving certificate rotations, by result: success, or invalid (a refused pair).",
            lambda: [(("success",), certs.reloads), (("invalid",), certs.failures)],
            ("result",),
            kind="counter",
        )

    def observe_answer_cache(self, cache: AnswerCache) -> None:
        """Expose the answer cache's size, hits and misses."""
        r = self.registry
        r.callback(
            PREFIX + "answer_cache_lookups_total",
            "Engine verdicts looked up for identical pods, by result.",
            lambda: [(("hit",), cache.hits), (("miss",), cache.misses)],
            ("result",),
            kind="counter",
        )
        r.callback(PREFIX + "answer_cache_entries", "Engine verdicts remembered.", lambda: [((), len(cache))])

    def observe_namespaces(self, misses: Callable[[], int], size: Callable[[], int]) -> None:
        """Expose the namespace cache's size and misses."""
        r = self.registry
        r.callback(
            PREFIX + "namespace_cache_misses_total",
            "Pod CREATEs in a namespace the cache did not know yet (treated as not opted in).",
            lambda: [((), misses())],
            kind="counter",
        )
        r.callback(PREFIX + "namespace_cache_size", "Namespaces in the label cache.", lambda: [((), size())])

    def observe_watches(self, watches: list[WatchSource]) -> None:
        """Expose each watch's sync state and counters."""
        def synced() -> Iterable[tuple[Labels, float]]:
            return [((w.name,), 1 if w.has_synced else 0) for w in watches]

        def counter(attr: str) -> Callable[[], Iterable[tuple[Labels, float]]]:
            return lambda: [((w.name,), getattr(w.stats, attr, 0)) for w in watches]

        r = self.registry
        r.callback(PREFIX + "watch_synced", "1 once a watch has completed its first list.", synced, ("watch",))
        for attr, help in (
            ("relists", "Relists after the first list (resourceVersion gone)."),
            ("restarts", "Watch streams resumed from a resourceVersion."),
            ("errors", "Failed list/watch requests and broken streams."),
            ("events", "Watch events applied."),
        ):
            r.callback(PREFIX + f"watch_{attr}_total", help, counter(attr), ("watch",), kind="counter")

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return self.registry.render()
