"""Slow and idle clients cannot hold a server's connections: timeouts and a cap, per listener.

aiohttp reads request headers for as long as a client cares to trickle them
and accepts every connection the kernel hands it. A few thousand connections
that each send a byte now and then (slowloris) then fill the file
descriptors and the memory of a webhook that every pod CREATE in the cluster
waits for. So every listener of :class:`serving.process.Process` accepts
through a :class:`ConnectionPool`, which holds these limits:

* **header timeout**: a new connection must finish its TLS handshake and its
  first request's headers within ``header_timeout`` seconds; on a kept-alive
  connection the clock starts at the next request's first byte;
* **body timeout**: the body must arrive within ``body_timeout`` seconds of
  the headers (enforced where the body is read, :mod:`serving.process`);
* **idle timeout**: a kept-alive connection with no request for
  ``idle_timeout`` seconds is closed (aiohttp's keep-alive timer);
* **connection cap**: at most ``max_connections`` connections are open. At
  the cap a new connection replaces the one that has waited longest without
  sending a complete request (handshake or headers first, then idle ones);
  when every connection is busy with a request, the new one is closed at
  once. Either way the count never grows past the cap, and a client that
  sends whole requests promptly gets in ahead of one that trickles.

TLS is started here, after the connection is counted, so a handshake that
never finishes holds a slot (and its timeout) like any other slow client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from aiohttp import web

log = logging.getLogger(__name__)

T = TypeVar("T")

#: States of a connection, as the cap sees them.
_NEW, _HANDSHAKE, _HEADERS, _REQUEST, _IDLE, _CLOSED = "new", "handshake", "headers", "request", "idle", "closed"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits every listener of a process holds (the figures and their reasons: docs/webhook.md#security)."""

    #: TLS handshake plus request line and headers. The apiserver and the scheduler send a few
    #: hundred bytes of headers at once; a client that needs seconds for them is not one of them.
    header_timeout: float = 10.0
    #: The body after its headers. 30 s is the longest any caller waits (a webhook's
    #: ``timeoutSeconds`` is at most 30, the scheduler's extender ``httpTimeout`` defaults to 30 s):
    #: a slower upload is already abandoned by its sender.
    body_timeout: float = 30.0
    #: A kept-alive connection with no request. Longer than Go's ``IdleConnTimeout`` (90 s, what
    #: the apiserver's and the scheduler's clients use), so the client closes an idle connection
    #: first: a server-side close racing a new request on it would fail that request.
    idle_timeout: float = 120.0
    #: Open connections per listener. The apiserver keeps a pool of tens of connections per
    #: replica; 1,000 leaves room for many apiservers while bounding memory and file descriptors.
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")


class ConnectionPool:
    """The connections of one listener: counted, timed, and capped (see the module docstring)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        #: Connections open now, TLS handshakes in progress included.
        self.open = 0
        #: Since start: connections closed at once at the cap, closed to make room, and timed out.
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0
        self._waiting: OrderedDict[_Guard, None] = OrderedDict()  # handshake or headers, oldest first
        self._idle: OrderedDict[_Guard, None] = OrderedDict()  # kept alive between requests
        self._by_handler: dict[int, _Guard] = {}
        self._all: set[_Guard] = set()

    def factory(self, server: web.Server, ssl_context: ssl.SSLContext | None) -> Callable[[], asyncio.Protocol]:
        """The protocol factory for ``loop.create_server`` (no ``ssl=``: TLS is started here)."""
        return lambda: _Guard(self, server, ssl_context)

    # -- what the request path tells the pool ---------------------------------------
    def request_started(self, handler: object) -> None:
        """Headers complete: the request's own timeouts apply from here, and it may not be evicted."""
        guard = self._by_handler.get(id(handler))
        if guard is not None:
            guard.set_state(_REQUEST)

    def request_finished(self, handler: object) -> None:
        """The answer is written: the connection is idle until the client's next request."""
        guard = self._by_handler.get(id(handler))
        if guard is not None and guard.state == _REQUEST:
            guard.set_state(_IDLE)

    def abort_all(self) -> None:
        """Close every connection at once (at exit, after the drain)."""
        for guard in list(self._all):
            guard.abort()

    # -- bookkeeping -----------------------------------------------------------------
    def _admit(self, guard: _Guard) -> bool:
        if self.open >= self.limits.max_connections:
            victim = next(iter(self._waiting), None) or next(iter(self._idle), None)
            if victim is None:
                self.refused += 1
                return False
            self.evicted += 1
            victim.abort()
        self.open += 1
        self._all.add(guard)
        return True

    def _moved(self, guard: _Guard, old: str, new: str) -> None:
        if old in (_HANDSHAKE, _HEADERS):
            self._waiting.pop(guard, None)
        elif old == _IDLE:
            self._idle.pop(guard, None)
        if new in (_HANDSHAKE, _HEADERS):
            self._waiting[guard] = None
        elif new == _IDLE:
            self._idle[guard] = None

    def _attached(self, guard: _Guard, handler: object) -> None:
        self._by_handler[id(handler)] = guard

    def _released(self, guard: _Guard, handler: object | None) -> None:
        self.open -= 1
        self._all.discard(guard)
        if handler is not None:
            self._by_handler.pop(id(handler), None)


class _Guard(asyncio.Protocol):
    """One accepted connection: its slot in the pool, its timer, and aiohttp's handler behind it."""

    def __init__(self, pool: ConnectionPool, server: web.Server, ssl_context: ssl.SSLContext | None) -> None:
        self._pool = pool
        self._server = server
        self._ssl = ssl_context
        self._raw: asyncio.Transport | None = None
        self._handler: Any = None  # aiohttp's RequestHandler, once the connection is readable
        self._timer: asyncio.TimerHandle | None = None
        #: Bytes decrypted as the handshake completes, before the handler is attached.
        self._early: list[bytes] = []
        self.state = _NEW

    # -- state -------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        if self.state == _CLOSED:
            return
        old, self.state = self.state, state
        self._pool._moved(self, old, state)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if state in (_HANDSHAKE, _HEADERS):
            self._timer = asyncio.get_running_loop().call_later(self._pool.limits.header_timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.state in (_HANDSHAKE, _HEADERS):
            self._pool.timed_out += 1
            self.abort()

    def abort(self) -> None:
        """Drop the connection now (no TLS close_notify: a slow client is owed nothing)."""
        self._release()
        if self._raw is not None:
            self._raw.abort()

    def _release(self) -> None:
        if self.state in (_CLOSED, _NEW):
            self.state = _CLOSED
            return
        old, self.state = self.state, _CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pool._moved(self, old, _CLOSED)
        self._pool._released(self, self._handler)

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        raw = self._raw = cast(asyncio.Transport, transport)
        if not self._pool._admit(self):
            self.state = _CLOSED
            raw.abort()
            return
        self.set_state(_HANDSHAKE if self._ssl is not None else _HEADERS)
        if self._ssl is None:
            self._attach(raw)
            return
        # start_tls must take the transport over before the loop reads from it again, or the
        # ClientHello would land here: uvloop polls right after connection_made returns.
        loop = asyncio.get_running_loop()
        tls = loop.start_tls(raw, self, self._ssl, server_side=True,
                             ssl_handshake_timeout=self._pool.limits.header_timeout)
        _eagerly(tls, self._handshake_done)

    def _handshake_done(self, tls: asyncio.Transport | None, exc: BaseException | None) -> None:
        if exc is not None or tls is None or self.state == _CLOSED:
            if exc is not None:
                log.debug("TLS handshake failed: %r", exc)
            self.abort()
            return
        self.set_state(_HEADERS)
        self._attach(tls)

    def _attach(self, transport: asyncio.Transport) -> None:
        self._handler = self._server()
        self._pool._attached(self, self._handler)
        self._handler.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self._handler.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.state == _IDLE:
            self.set_state(_HEADERS)  # the next request has begun: its headers are on the clock
        if self._handler is not None:
            self._handler.data_received(data)
        elif self.state != _CLOSED:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._handler is not None:
            result: bool | None = self._handler.eof_received()
            return result
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._handler is not None:
            with contextlib.suppress(Exception):
                self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()


def _eagerly(coro: Coroutine[Any, Any, T], done: Callable[[T | None, BaseException | None], None]) -> None:
    """Run ``coro`` now up to its first suspension, then on as it is woken; ``done(result, error)`` at its end.

    What ``asyncio.Task(coro, eager_start=True)`` does from Python 3.12 on,
    written out for 3.11: a task would take its first step only after the
    loop has polled again.
    """

    def step(_: object = None) -> None:
        try:
            waiting = coro.send(None)
        except StopIteration as stop:
            done(stop.value, None)
        except BaseException as exc:  # handed to done, which decides
            done(None, exc)
        else:
            waiting.add_done_callback(step)

    step()


class GuardedSite(web.TCPSite):
    """An aiohttp TCP site whose connections go through a :class:`ConnectionPool`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        pool: ConnectionPool,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self.pool = pool

    async def start(self) -> None:
        self._runner._reg_site(self)
        server = self._runner.server
        assert isinstance(server, web.Server)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.pool.factory(server, self._ssl_context), self._host, self._port, backlog=self._backlog
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]
        else:
            self._bound_port = self._port
