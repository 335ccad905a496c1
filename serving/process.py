"""One long-running meshfit process from start to exit: the lifecycle every server shares.

A server says what it is made of and :class:`Process` runs it, in this order:

1. **listen**: each HTTP listener (:meth:`Process.listen`, TLS or not) binds
   its port; a port that cannot be bound is a :class:`StartError`, raised
   before anything else has started;
2. **background**: every task given to :meth:`Process.background` starts,
   handed an event that is set when the process has drained (watches,
   pollers and reloads keep the state the last requests read current);
3. **serve** until the stop event is set: by SIGTERM or SIGINT (handlers
   installed for the run and removed after it), by the caller, or from inside
   by :meth:`Process.stop` (a controller that loses its lease);
4. **drain**: :attr:`Process.draining` turns true at once, so readiness
   probes fail and endpoints stop sending traffic; after ``shutdown_delay``
   (the time endpoints controllers and kube-proxy need to notice) each
   listener stops accepting, then the requests in flight, bodies still on the
   wire included, may finish for up to ``shutdown_timeout`` before the
   remaining connections are closed. A request cut off mid-way is a failed pod
   CREATE or scheduling cycle somewhere in the cluster;
5. **clean up**: background tasks get a moment to return, then are
   cancelled; the cleanups (:meth:`Process.on_cleanup`, an API client's
   close, a lease's release) run last registered first; the exit code is 0
   unless :meth:`Process.stop` said otherwise.

Whatever a server adds to every listener (request limits, timeouts,
connection caps) belongs here, in :func:`http_app` and :meth:`Process.listen`,
so every server gets it at once. What every listener holds now:

* the **connection limits** of :class:`serving.connections.ConnectionLimits`
  (header, body and idle timeouts, a connection cap), one pool per listener;
* a **body limit** per application (:func:`http_app`): a body is read here,
  before the handler runs, in chunks and never past the limit: a larger one is
  answered 413 as soon as its ``Content-Length`` or its bytes say so, a slower
  one 408 after ``body_timeout``, a JSON body denser in objects and arrays than
  :data:`JSON_BYTES_PER_CONTAINER` allows 413. The handler's ``await
  request.read()`` gets the bytes already read;
* a **body budget** per listener (:class:`ByteBudget`): at most
  :data:`BODY_BUDGET` limits' worth of bodies held at once, whatever the
  number of connections;
* an upload the client **aborts**, and a request aiohttp cannot parse, is
  logged at debug level (and summed up in one warning a minute,
  :mod:`serving.log_summary`), never with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from serving.connections import ConnectionLimits, ConnectionPool, GuardedSite
from serving.log_summary import LogSummary

log = logging.getLogger(__name__)

#: What a background task is: a coroutine function of the event that ends it.
Background = Callable[[asyncio.Event], Awaitable[Any]]
Cleanup = Callable[[], Awaitable[Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The signals that stop a process (SIGTERM from the kubelet, SIGINT from a terminal).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long background tasks may take to return once told to stop, before they are cancelled.
TASK_GRACE = 5.0
#: Bodies a listener holds at once, in units of its body limit (:class:`ByteBudget`).
BODY_BUDGET = 4
#: The most JSON objects and arrays a body may hold: one per this many bytes of the body limit.
JSON_BYTES_PER_CONTAINER = 32
#: Seconds a refused upload's remainder is read and dropped before the connection closes.
LINGER = 2.0
#: File descriptors a process needs beyond its listeners' connections (watches, files, the API client).
FD_RESERVE = 256

#: A request the lifecycle answered without calling the handler: the request, and the status
#: (413 too large, 408 too slow, 400 aborted by the client), for the server's own metrics.
Refused = Callable[[web.Request, int], None]
BODY_LIMIT = web.AppKey("meshfit body limit", int)
ON_REFUSED: web.AppKey[Refused] = web.AppKey("meshfit on refused")

_aborted = LogSummary(log, "uploads aborted by their clients")


class _ServerLog(logging.Logger):
    """aiohttp's connection-level log, with its per-request tracebacks turned into summaries.

    aiohttp logs a request it cannot parse (a bad header line, a broken chunk)
    with a traceback at ERROR: anyone who reaches the port could fill the logs.
    Those are the client's doing and go to a summary a minute; anything else
    aiohttp would log as an exception is rarer (a bug) and keeps its
    traceback, once a minute at most.
    """

    def __init__(self) -> None:
        super().__init__("aiohttp.server")
        self.parent = logging.getLogger("aiohttp")
        self.malformed = LogSummary(log, "malformed HTTP requests")
        self.failed = LogSummary(log, "requests aiohttp failed to handle")

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)):
            self.malformed.note(str(msg) + ": %s", *args, exc or "")
        else:
            self.failed.note(str(msg), *args, exc_info=exc)


_server_log = _ServerLog()


class StartError(Exception):
    """The process cannot start as configured; the message says why, in one line."""


class InFlightGauge(Protocol):
    """A server's metrics with a gauge of the requests being handled."""

    in_flight: int


def http_app(
    max_body_bytes: int, *, on_refused: Refused | None = None, in_flight: InFlightGauge | None = None
) -> web.Application:
    """An aiohttp application with the limits every meshfit listener has.

    Its bodies are read by the listener before the handler runs, never past
    ``max_body_bytes`` (see the module docstring); ``on_refused(request,
    status)`` hears of every request answered without its handler, and
    ``in_flight.in_flight`` counts every POST from its headers to its
    answer, the body's upload included.
    """
    middlewares = [] if in_flight is None else [_counting(in_flight)]
    app = web.Application(client_max_size=max_body_bytes, middlewares=middlewares)
    app[BODY_LIMIT] = max_body_bytes
    if on_refused is not None:
        app[ON_REFUSED] = on_refused
    return app


def _counting(gauge: InFlightGauge) -> Any:
    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":  # probes and metrics are not the server's work
            return await handler(request)
        gauge.in_flight += 1
        try:
            return await handler(request)
        finally:
            gauge.in_flight -= 1

    return count


class ByteBudget:
    """The body bytes a listener holds at once, across all its requests, from the first chunk to the answer.

    The connection cap bounds connections, not what they upload: a thousand
    clients each sending a body just under the limit would otherwise hold a
    thousand bodies. A chunk that does not fit waits (the client's upload
    stalls under TCP flow control) until answers free room, or until the
    body timeout answers 408; a request alone is never made to wait.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._room = asyncio.Condition()

    async def take(self, n: int) -> None:
        async with self._room:
            await self._room.wait_for(lambda: self.used == 0 or self.used + n <= self.total)
            self.used += n

    async def give(self, n: int) -> None:
        if n:
            async with self._room:
                self.used -= n
                self._room.notify_all()


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    """Answer for the handler and close the connection: the rest of the body may still be on the wire."""
    on_refused = request.app.get(ON_REFUSED)
    if on_refused is not None:
        on_refused(request, status)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s: %d %s", request.method, request.path, status, message)
    response = web.Response(status=status, text=message + "\n")
    response.force_close()
    return response


async def _read_body(
    request: web.Request, limit: int, timeout: float, budget: ByteBudget, held: list[int]
) -> web.Response | None:
    """Read the body in chunks, never past ``limit``; a refusal to answer instead of the handler, or ``None``.

    Every chunk is taken from ``budget`` first; ``held[0]`` says how much, for the caller to give back.
    """
    length = request.content_length
    if length is not None and length > limit:
        return _refuse(request, 413, f"body of {length} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    return _refuse(request, 413, f"body exceeds the limit of {limit} bytes")
                await budget.take(len(chunk))
                held[0] += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        return _refuse(request, 408, f"body not received within {timeout:g}s")
    except (ConnectionError, HttpProcessingError, asyncio.IncompleteReadError) as exc:
        _aborted.note("%s %s from %s: %s", request.method, request.path, request.remote, exc or type(exc).__name__)
        return _refuse(request, 400, "upload aborted")
    body = b"".join(chunks)
    if request.content_type == "application/json":
        # What a decoder makes of a body is up to ~30 times its size in objects ("{}," is 3 bytes,
        # an empty dict 64): a body under the limit made of nothing but containers would cost a
        # server hundreds of megabytes. One container per 32 bytes of the limit is far more than
        # any real document has (a giant pod has one per ~20 bytes of itself, and is far smaller).
        containers = body.count(b"{") + body.count(b"[")
        if containers > limit // JSON_BYTES_PER_CONTAINER:
            return _refuse(request, 413, f"body holds {containers} JSON objects and arrays, more than the "
                                         f"{limit // JSON_BYTES_PER_CONTAINER} its size limit allows")
    # aiohttp's own read() would buffer up to twice the limit before checking it; what it
    # returns once the body is read is this attribute, so handlers keep calling read().
    request._read_bytes = body
    return None


@dataclass
class Listener:
    """One HTTP listener of a :class:`Process`: where it listens, and the port it got."""

    app: web.Application
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    access_log: logging.Logger | None = None
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    #: Requests being handled now, bodies still arriving included.
    in_flight: int = 0
    #: The listener's connections (open, refused, evicted, timed out); made at start.
    pool: ConnectionPool | None = None
    #: Body bytes held at once across requests: :data:`BODY_BUDGET` times the largest body limit.
    budget: ByteBudget | None = None
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _site: web.TCPSite | None = field(default=None, repr=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def scheme(self) -> str:
        """``https`` or ``http``."""
        return "https" if self.ssl_context is not None else "http"

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        pool = self.pool
        if pool is not None:
            pool.request_started(request.protocol)
        held = [0]
        try:
            limit = request.app.get(BODY_LIMIT)
            if limit is not None and request.can_read_body:
                if self.budget is None:
                    self.budget = ByteBudget(BODY_BUDGET * limit)
                refused = await _read_body(request, limit, self.limits.body_timeout, self.budget, held)
                if refused is not None:
                    return refused
            return await handler(request)
        finally:
            if self.budget is not None:
                await self.budget.give(held[0])
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()
            if pool is not None:
                pool.request_finished(request.protocol)

    async def start(self, shutdown_timeout: float) -> None:
        """Bind the port (the one asked for, or a free one for port 0) and accept connections."""
        self.app.middlewares.append(self._count)
        runner = self._runner = web.AppRunner(
            self.app,
            access_log=self.access_log,
            handle_signals=False,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=self.limits.idle_timeout,
            logger=_server_log,
            # After a refusal with the body still on the wire, the rest is read and dropped this long so
            # the client sees the answer rather than a reset; aiohttp's default, 10 s, is a slot held.
            lingering_time=LINGER,
        )
        await runner.setup()
        self.pool = ConnectionPool(self.limits)
        site = self._site = GuardedSite(runner, self.host, self.port, pool=self.pool, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise StartError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break

    async def stop_accepting(self) -> None:
        """Close the listening socket; open connections keep being served."""
        if self._site is not None:
            await self._site.stop()

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is being handled; False if some still are after ``timeout`` seconds.

        aiohttp's own shutdown stops reading from every connection at once,
        which would strand a request whose body is still on the wire; so the
        process waits here, with the listener closed, before it.
        """
        if self.in_flight == 0:
            return True
        self._idle.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self.in_flight == 0

    async def close(self) -> None:
        """Close the remaining (idle) connections and free the port."""
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
        if self.pool is not None:
            self.pool.abort_all()  # TLS handshakes still in progress, which aiohttp never saw


class Process:
    """A server's lifecycle: listeners, background tasks, signals, drain, cleanup (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        shutdown_delay: float = 0.0,
        shutdown_timeout: float = 30.0,
        handle_signals: bool = True,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.name = name
        #: What every listener of this process holds (timeouts, connection cap).
        self.limits = limits if limits is not None else ConnectionLimits()
        self.shutdown_delay = shutdown_delay
        self.shutdown_timeout = shutdown_timeout
        self.handle_signals = handle_signals
        #: True from the moment a stop begins: readiness must fail from then on.
        self.draining = False
        self.listeners: list[Listener] = []
        self._background: list[tuple[str, Background]] = []
        self._cleanups: list[Cleanup] = []
        self._stop: asyncio.Event | None = None
        self._exit_code = 0

    # -- what the process is made of ---------------------------------------------
    def listen(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        access_log: logging.Logger | None = None,
    ) -> Listener:
        """Serve ``app`` on ``host:port`` while the process runs; the listener's ``port`` is the bound one."""
        listener = Listener(app, host, port, ssl_context, access_log, self.limits)
        self.listeners.append(listener)
        return listener

    def background(self, name: str, run: Background) -> None:
        """Run ``run(stopped)`` while the process runs; ``stopped`` is set once it has drained."""
        self._background.append((name, run))

    def on_cleanup(self, cleanup: Cleanup) -> None:
        """Await ``cleanup()`` at exit, after the listeners and the background tasks; last registered first."""
        self._cleanups.append(cleanup)

    def stop(self, exit_code: int = 0) -> None:
        """End the run from inside (a lost leader lease, a fatal watch): drain, clean up, return ``exit_code``."""
        self._exit_code = exit_code
        if self._stop is not None:
            self._stop.set()

    # -- running -------------------------------------------------------------------
    async def run(
        self,
        stop: asyncio.Event | None = None,
        *,
        on_started: Callable[[], Awaitable[None] | None] | None = None,
    ) -> int:
        """Start, serve until ``stop`` is set (or a stop signal arrives), drain, clean up; the exit code.

        Raises :class:`StartError` when a listener cannot bind; what was set
        up by then is cleaned up.
        """
        stop = self._stop = stop if stop is not None else asyncio.Event()
        stopped = asyncio.Event()
        tasks: list[asyncio.Task[Any]] = []
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        try:
            _ensure_descriptors(self.limits.max_connections * len(self.listeners) + FD_RESERVE)
            for listener in self.listeners:
                await listener.start(self.shutdown_timeout)
            for name, run in self._background:
                tasks.append(asyncio.create_task(_returning(run(stopped)), name=f"{self.name}: {name}"))
            if self.handle_signals:
                for sig in STOP_SIGNALS:
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(sig, stop.set)
                        installed.append(sig)
            if on_started is not None:
                result = on_started()
                if asyncio.iscoroutine(result):
                    await result
            await stop.wait()
            await self._drain()
            return self._exit_code
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            stopped.set()
            await _finish(tasks, TASK_GRACE)
            for listener in self.listeners:
                await listener.close()
            for cleanup in reversed(self._cleanups):
                with contextlib.suppress(Exception):
                    await cleanup()

    async def _drain(self) -> None:
        self.draining = True
        log.info("stopping: not ready now, draining in %.1fs", self.shutdown_delay)
        if self.shutdown_delay > 0:
            await asyncio.sleep(self.shutdown_delay)
        in_flight = sum(listener.in_flight for listener in self.listeners)
        for listener in self.listeners:
            await listener.stop_accepting()
        for listener in self.listeners:
            if not await listener.drained(self.shutdown_timeout):
                log.warning("%d request(s) still in flight after %.0fs: closing anyway",
                            listener.in_flight, self.shutdown_timeout)
            await listener.close()
        log.info("stopped (%d request(s) were in flight at the stop)", in_flight)


def _ensure_descriptors(needed: int) -> None:
    """Raise the soft file descriptor limit to what the connection caps need, as far as the hard limit allows.

    Without it the cap would be a fiction: at 1,024 descriptors (a common
    default) accept() fails long before 1,000 connections, and good requests
    fail with the slow ones.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        log.warning(
            "only %d file descriptors (hard limit %s) for connection caps that need %d: "
            "lower --max-connections or raise the limit",
            soft, hard, needed,
        )


async def _returning(work: Awaitable[Any]) -> None:
    """A background task that ends in an error is logged, and does not take the process down."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task failed")


async def _finish(tasks: list[asyncio.Task[Any]], grace: float) -> None:
    """Let the tasks return (they were told to stop), then cancel those that have not."""
    pending = [t for t in tasks if not t.done()]
    if pending:
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
