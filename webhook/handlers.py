"""The webhook's HTTP face: ``/mutate``, ``/healthz``, ``/readyz``, ``/metrics``.

Handlers only move bytes: check the envelope (content type, size), hand the
body to :func:`webhook.review.parse_review` and :func:`webhook.mutate.admit`,
count, and write the answer. Everything a request needs (policy, namespace
labels) is already in memory, so the request path makes no API call.

Status codes follow whose fault a failure is. The client's (wrong content
type 415, too large 413, not an AdmissionReview 400) is answered with a
message and never logged above debug, since a scanner could otherwise fill
the logs. The pod's (the engine cannot handle it) is a normal 200 answer
whose content the policy decides. Only a bug in this process may surface as
a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from time import perf_counter

from aiohttp import web

from policy.inject import Namespace
from serving.exposition import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.log_summary import LogSummary
from serving.process import Process, http_app
from webhook.answer_cache import AnswerCache
from webhook.metrics import CertSource, Synced, WebhookMetrics
from webhook.mutate import (
    ADMITTED_ON_ERROR,
    DENIED,
    INJECTED,
    SKIPPED,
    admit,
    pod_name,
)
from webhook.namespaces import NamespaceLabels
from serving.namespace_policies import LivePolicy
from webhook.review import ReviewError, parse_review

log = logging.getLogger(__name__)

#: Like controller-runtime: big enough for any pod the apiserver accepts (its own limit is 3 MiB
#: per object in etcd, and a review carries the object, possibly twice).
DEFAULT_MAX_BODY_BYTES = 7 * 1024 * 1024

MUTATE_PATH = "/mutate"

#: ``requests_total{result}`` of the requests the listener refuses before the handler, by status.
REFUSED = {413: "too_large", 408: "body_timeout", 400: "aborted"}


class Webhook:
    """Holds the live state the handlers read; ``app()`` wires them into aiohttp."""

    def __init__(
        self,
        live: LivePolicy,
        namespaces: NamespaceLabels,
        metrics: WebhookMetrics,
        *,
        certs: CertSource | None = None,
        watches: Sequence[Synced] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        cache: AnswerCache | None = None,
        process: Process | None = None,
    ) -> None:
        self.live = live
        self.namespaces = namespaces
        self.metrics = metrics
        self.certs = certs
        self.watches = tuple(watches)
        self.max_body_bytes = max_body_bytes
        self.cache = cache
        self.process = process
        self._debug = log.isEnabledFor(logging.DEBUG)
        self._unhandled = LogSummary(log, "pods the engine could not handle")
        self._unexpected = LogSummary(log, "pods that met an internal error")

    @property
    def draining(self) -> bool:
        """Shutdown has begun: readiness goes false so endpoints drop this replica first."""
        return self.process is not None and self.process.draining

    def resolve(self, name: str) -> Namespace:
        """The namespace as the engine needs it: its labels and its own policy."""
        return Namespace(name, self.namespaces.labels(name), self.live.namespace_policy(name))

    def app(self) -> web.Application:
        """The routes, on an application with the limits every listener has."""
        app = http_app(self.max_body_bytes, on_refused=self._refused, in_flight=self.metrics)
        app.router.add_post(MUTATE_PATH, self.mutate)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_handler)
        return app

    # -- /mutate -------------------------------------------------------------
    def _client_error(self, status: int, result: str, message: str, *, close: bool = False) -> web.Response:
        self.metrics.requests.inc(result)
        self.metrics.errors.inc("client")
        if self._debug:
            log.debug("%d %s", status, message)
        response = web.Response(status=status, text=message + "\n")
        if close:
            # The rest of an oversize body is still on the wire: do not read it to reuse the connection.
            response.force_close()
        return response

    def _refused(self, request: web.Request, status: int) -> None:
        """The lifecycle answered for :meth:`mutate` (:mod:`serving.process`): count it as the client's error."""
        self.metrics.requests.inc(REFUSED.get(status, "bad_request"))
        self.metrics.errors.inc("client")

    async def mutate(self, request: web.Request) -> web.Response:
        """``POST /mutate``: one AdmissionReview in, its answer out.

        The body is already read, within ``max_body_bytes`` and the body
        timeout, by the listener (:mod:`serving.process`).
        """
        started = perf_counter()
        if request.content_type != "application/json":
            return self._client_error(
                415, "unsupported_media_type", f"Content-Type must be application/json, got {request.content_type}"
            )
        metrics = self.metrics
        body = await request.read()
        try:
            review = parse_review(body)
        except ReviewError as exc:
            return self._client_error(400, "bad_request", f"invalid AdmissionReview: {exc}")

        outcome = admit(review, self.live.policy, self.resolve, self.cache)
        result = outcome.result
        metrics.requests.inc(result)
        if result == INJECTED:
            for sidecar, version, mode in outcome.sidecars:
                metrics.injections.inc(sidecar, version, mode)
            if self._debug:
                log.debug("%s: injected (%s)", pod_name(review), "dry run" if review.dry_run else review.uid)
        elif result == SKIPPED:
            metrics.skips.inc(outcome.skip_label)
            # The user already sees any warning, and skips are counted by reason: no log line per
            # pod, or an emergency stop in a busy cluster would flood the logs.
            if self._debug:
                log.debug("%s: not injected: %s", pod_name(review), outcome.skip_reason)
        elif result in (DENIED, ADMITTED_ON_ERROR):
            metrics.errors.inc("internal" if outcome.unexpected is not None else "engine")
            verdict = "denied (failClosed)" if result == DENIED else "admitted without sidecars (failClosed: false)"
            # Anyone who may create pods can send such a pod in a loop: a line per pod at debug
            # level, and a summary (with a bug's traceback) once a minute at most.
            summary = self._unexpected if outcome.unexpected is not None else self._unhandled
            summary.note("%s: %s: %s", pod_name(review), verdict, outcome.error, exc_info=outcome.unexpected)
        metrics.latency.observe(perf_counter() - started)
        response = web.Response(body=outcome.body, content_type="application/json")
        if self.draining:
            response.force_close()  # tell the client to take its next review to another replica
        return response

    # -- probes and metrics ----------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        """Alive: the event loop answers. Nothing else, or a slow apiserver would restart every replica."""
        return web.Response(text="ok\n")

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether to take traffic, and one line per check for the body."""
        ready = True
        lines: list[str] = []
        live = self.live
        if live.policy is None:
            ready = False
            why = f": {live.rejected.message}" if live.rejected else ""
            lines.append(f"[-] policy: none loaded yet{why}")
        else:
            lines.append(f"[+] policy: revision {live.policy.revision} from {live.source}")
            if live.rejected is not None:
                lines.append(
                    f"[!] policy: last update refused, still serving revision {live.policy.revision}: "
                    f"{live.rejected.message}"
                )
        for namespace, rejection in sorted(live.namespace_rejections.items()):
            lines.append(f"[!] namespace policy {namespace}: last update refused: {rejection.message}")
        if self.certs is not None:
            if self.certs.valid:
                seconds = self.certs.seconds_until_expiry() or 0.0
                lines.append(f"[+] certificate: valid, expires in {seconds / 86400:.1f} days")
                if self.certs.refused:
                    # Still ready: the pair in force is good. The refusal must be seen before it expires.
                    lines.append(f"[!] certificate: rotated pair refused, still serving serial "
                                 f"{self.certs.serial or 0:x}: {self.certs.refused}")
            else:
                ready = False
                why = self.certs.last_error or "expired or not yet valid"
                lines.append(f"[-] certificate: not valid: {why}")
        if not self.namespaces.synced:
            ready = False
            lines.append("[-] namespaces: initial list not synced yet")
        for watch in self.watches:
            if not watch.has_synced:
                ready = False
                lines.append(f"[-] watch {watch.name}: initial list not synced yet")
        if self.draining:
            ready = False
            lines.append("[-] shutting down")
        lines.append("ready" if ready else "not ready")
        return ready, lines

    async def readyz(self, request: web.Request) -> web.Response:
        """``GET /readyz``: 200 when :meth:`readiness` says so, else 503; one line per check."""
        ready, lines = self.readiness()
        return web.Response(status=200 if ready else 503, text="\n".join(lines) + "\n")

    async def metrics_handler(self, request: web.Request) -> web.Response:
        """``GET /metrics`` in the Prometheus text format."""
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})
