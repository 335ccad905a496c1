"""The global policy a server obeys right now, and where updates come from.

The webhook and the extender read the same global policy document, so the
two can never disagree about which policy is in force. It is edited by hand,
sometimes under pressure (the emergency switches live in it), so an update is
*offered*, never imposed: a valid one replaces the policy the next request
sees; an invalid one is refused with every path-qualified error logged and
counted while the last good policy keeps serving. A typo in an emergency
edit must never take admission or scheduling down.

Sources: :class:`PolicyFile` polls a local file by content (a mounted
ConfigMap changes by symlink swap, often keeping mtimes), and
:func:`global_configmap_handlers` turns a list/watch of the one global
policy ConfigMap into offers. What a server adds on top (the webhook's
namespace policies, the extender's scorer) hangs on :meth:`GlobalPolicy._installed`.

While serving, a policy is parsed **off the event loop**, in a thread of its
own, and refused when it takes longer than ``parse_timeout`` seconds
(:func:`parse_off_loop`): the loop keeps answering reviews, scheduler calls
and ``/healthz`` whatever the document holds. A thread cannot be stopped, so
a runaway parse runs on to its end in the background; the next update gets a
thread of its own and is never queued behind it. (The document's own bounds,
size, depth and alias expansion, are :mod:`policy.load`'s.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from policy.fields import PolicyError
from policy.load import parse_policy_text, policy_from_configmap
from policy.model import POLICY_KEY, Policy
from serving.polling import poll

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0
#: Longest a policy may take to parse while serving. The shipped policy parses in milliseconds;
#: one that needs seconds of CPU is not one a person wrote, and an emergency switch must not wait.
PARSE_TIMEOUT = 10.0

T = TypeVar("T")
#: ``parse_policy_text(text, source=...)`` and ``policy_from_configmap(configmap, source=...)``: the seams.
TextParser = Callable[..., Policy]
ConfigMapParser = Callable[..., Policy]


class ParseTimeout(Exception):
    """A policy that did not parse within the time bound."""


async def parse_off_loop(parse: Callable[[], T], timeout: float) -> T:
    """``parse()`` in a daemon thread of its own; :class:`ParseTimeout` after ``timeout`` seconds.

    A fresh thread each time, not an executor's: a parse that never ends
    would otherwise hold a worker that every later update queues behind.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = parse()
        except BaseException as exc:  # handed to the loop, which re-raises it there
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while a runaway parse ran on
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="policy parse", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        raise ParseTimeout(f"took longer than {timeout:g}s to parse") from None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An update that was refused: where it came from and why, on one line and in full."""

    source: str
    message: str
    errors: tuple[str, ...]
    at: float


def rejection(source: str, exc: Exception | str) -> Rejection:
    """A :class:`Rejection` of ``exc`` (a :class:`PolicyError` keeps its path-qualified errors)."""
    if isinstance(exc, PolicyError):
        return Rejection(source, exc.one_line(), tuple(str(e) for e in exc.errors), time.time())
    return Rejection(source, f"{source}: {exc}", (str(exc),), time.time())


class GlobalPolicy:
    """The last good global policy and the refusals since.

    Lives on the event loop's thread: readers take ``policy`` with no lock,
    and an update swaps the reference in one assignment, so a request sees
    either the old policy or the new one, never a mixture.

    ``loads`` counts the updates taken, the first one included (a policy given
    to the constructor is where it starts, not an update); ``rejections``
    counts the refused ones.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        source: str = "",
        *,
        parse_text: TextParser = parse_policy_text,
        parse_configmap: ConfigMapParser = policy_from_configmap,
        parse_timeout: float = PARSE_TIMEOUT,
    ) -> None:
        self.policy: Policy | None = policy
        #: How documents become policies (tests put a slow or failing parser here), and the time bound.
        self.parse_text = parse_text
        self.parse_configmap = parse_configmap
        self.parse_timeout = parse_timeout
        self.source = source
        #: Set while the most recent update was refused; cleared by the next good one.
        self.rejected: Rejection | None = None
        #: The most recent refusal, kept after later good updates: what went wrong last.
        self.last_rejection: Rejection | None = None
        self.loads = 0
        self.rejections = 0
        #: False from the start of a configured source until it has answered once (readiness waits on it).
        self.settled = True
        self.loaded_at: float | None = time.time() if policy is not None else None
        self._text: str | None = None

    @property
    def revision(self) -> str | None:
        """The revision of the policy in force, ``None`` before the first."""
        return self.policy.revision if self.policy is not None else None

    def offer_text(self, text: str, source: str) -> bool:
        """Offer a policy document (the policy itself or a ConfigMap manifest holding it), parsed here and now.

        For start-up, before serving; while serving use :meth:`offer_text_off_loop`.
        """
        parse = self._text_parse(text, source)
        if self._unchanged(text, source):
            return False
        return self._take(text, source, parse)

    def offer_configmap(self, configmap: Mapping[str, Any]) -> bool:
        """Offer the global policy ConfigMap as the watch delivered it, parsed here and now."""
        text, source, parse = self._configmap_parse(configmap)
        if self._unchanged(text, source):
            return False
        return self._take(text, source, parse)

    async def offer_text_off_loop(self, text: str, source: str) -> bool:
        """:meth:`offer_text`, parsed in a thread within ``parse_timeout`` (see the module docstring)."""
        return await self._offer_off_loop(text, source, self._text_parse(text, source))

    async def offer_configmap_off_loop(self, configmap: Mapping[str, Any]) -> bool:
        """:meth:`offer_configmap`, parsed in a thread within ``parse_timeout``."""
        return await self._offer_off_loop(*self._configmap_parse(configmap))

    def _text_parse(self, text: str, source: str) -> Callable[[], Policy]:
        return lambda: self.parse_text(text, source=source)

    def _configmap_parse(self, configmap: Mapping[str, Any]) -> tuple[str | None, str, Callable[[], Policy]]:
        meta = configmap.get("metadata") or {}
        source = f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}"
        text = (configmap.get("data") or {}).get(POLICY_KEY)
        return (text if isinstance(text, str) else None), source, lambda: self.parse_configmap(configmap, source=source)

    def _unchanged(self, text: str | None, source: str) -> bool:
        if text is not None and text == self._text:
            # A label or annotation edit, a relist, a file touched, or a revert to the policy in force.
            self._restored(source)
            return True
        return False

    def _take(self, text: str | None, source: str, parse: Callable[[], Policy]) -> bool:
        """Install what ``parse`` makes of ``text``, or refuse it: any exception is a refused policy."""
        try:
            policy = parse()
        except PolicyError as exc:
            self._reject(rejection(source, exc), exc)
            return False
        except Exception as exc:  # a loader bug must cost this update, never the policy in force
            self._reject(rejection(source, f"cannot be loaded: {type(exc).__name__}: {exc}"), None)
            return False
        return self._installed_from(text, source, policy)

    async def _offer_off_loop(self, text: str | None, source: str, parse: Callable[[], Policy]) -> bool:
        if self._unchanged(text, source):
            return False
        try:
            policy = await parse_off_loop(parse, self.parse_timeout)
        except ParseTimeout as exc:
            self._reject(rejection(source, str(exc)), None)
            return False
        except PolicyError as exc:
            self._reject(rejection(source, exc), exc)
            return False
        except Exception as exc:
            self._reject(rejection(source, f"cannot be loaded: {type(exc).__name__}: {exc}"), None)
            return False
        return self._installed_from(text, source, policy)

    def _installed_from(self, text: str | None, source: str, policy: Policy) -> bool:
        self._text = text
        self._install(policy, source)
        return True

    def refuse(self, source: str, message: str) -> None:
        """Record an update that carries no usable policy (unreadable bytes, a vanished source)."""
        self._reject(rejection(source, message), None)

    def absent(self, source: str, reason: str) -> None:
        """The source holds no policy now (a file that cannot be read, a ConfigMap not found or deleted).

        The last good policy stays either way; here that counts as a refused
        update, so it shows wherever refusals show.
        """
        self.refuse(source, reason + ("; keeping the last good policy" if self.policy is not None else ""))

    def _installed(self, previous: Policy | None) -> None:
        """Called after a new policy is in force: what depends on it follows here."""

    def _restored(self, source: str) -> None:
        if self.rejected is not None and self.policy is not None:
            log.info("policy from %s is back to the one in force (revision %s)", source, self.policy.revision)
            self.rejected = None

    def _install(self, policy: Policy, source: str) -> None:
        previous = self.policy
        self.policy = policy
        self.source = source
        self.rejected = None
        self.loads += 1
        self.loaded_at = time.time()
        if previous is None:
            log.info("policy loaded from %s (revision %s)", source, policy.revision)
        else:
            log.info("policy updated from %s: revision %s -> %s", source, previous.revision, policy.revision)
        self._installed(previous)

    def _reject(self, refused: Rejection, exc: PolicyError | None) -> None:
        self.rejected = self.last_rejection = refused
        self.rejections += 1
        if self.policy is None:
            log.error("no policy yet: %s", refused.message)
        else:
            log.error(
                "refused policy update from %s, still serving revision %s: %s",
                refused.source,
                self.policy.revision,
                refused.message,
            )
        if exc is not None:
            for error in exc.errors:
                log.error("  %s: %s", refused.source, error)


class PolicyFile:
    """Polls one file by content and offers each new version to a :class:`GlobalPolicy`."""

    def __init__(self, live: GlobalPolicy, path: str | Path, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.live = live
        self.path = Path(path)
        self.interval = interval
        self._digest: bytes | None = None
        #: Why the last read failed (``None`` once the file reads again); told to the policy once per outage.
        self.unreadable: str | None = None

    def check_now(self) -> bool:
        """Read once and parse here (at start-up); True when a new valid policy was installed."""
        text = self._read()
        return text is not None and self.live.offer_text(text, str(self.path))

    async def check_off_loop(self) -> bool:
        """Read once, parse in a thread within the time bound (while serving); True when installed."""
        text = self._read()
        return text is not None and await self.live.offer_text_off_loop(text, str(self.path))

    def _read(self) -> str | None:
        """The file's text when it changed since the last read, else ``None`` (refusals recorded)."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if self.unreadable is None:
                self.unreadable = f"cannot read: {exc.strerror or exc}"
                self.live.absent(str(self.path), self.unreadable)
            return None
        self.unreadable = None
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.live.refuse(str(self.path), f"not UTF-8 text: {exc}")
            return None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set, parsing off the loop."""
        await poll(self.check_off_loop, self.interval, stop, "policy file poll")


@dataclass(frozen=True, slots=True)
class ConfigMapHandlers:
    """List/watch callbacks (``kube.watch.ListWatch``'s ``on_sync`` and ``on_event``) for policy ConfigMaps."""

    on_sync: Callable[[list[dict[str, Any]], str], Awaitable[None] | None]
    on_event: Callable[[str, dict[str, Any]], Awaitable[None] | None]


#: Called with the ConfigMap and the refusal when an update of it is refused (to write an Event).
OnRefused = Callable[[Mapping[str, Any], Rejection], Awaitable[Any]]


def global_configmap_handlers(live: GlobalPolicy, namespace: str, name: str, *,
                              on_refused: OnRefused | None = None) -> ConfigMapHandlers:
    """Callbacks (coroutine functions: each update is parsed off the loop) for a watch of ``namespace/name``.

    ``on_refused`` hears of each refused update with the ConfigMap it came in,
    so the person who edited it can be told where they will look (an Event).
    """
    source = f"ConfigMap {namespace}/{name}"

    async def offer(configmap: dict[str, Any]) -> None:
        before = live.rejections
        await live.offer_configmap_off_loop(configmap)
        if on_refused is not None and live.rejections > before and live.last_rejection is not None:
            await on_refused(configmap, live.last_rejection)

    def matches(configmap: Mapping[str, Any]) -> bool:
        meta = configmap.get("metadata") or {}
        return meta.get("namespace") == namespace and meta.get("name") == name

    async def on_sync(items: list[dict[str, Any]], resource_version: str = "") -> None:
        for configmap in items:
            if matches(configmap):
                await offer(configmap)
                return
        live.absent(source, "not found")

    async def on_event(kind: str, configmap: dict[str, Any]) -> None:
        if not matches(configmap):
            return
        if kind in ("ADDED", "MODIFIED"):
            await offer(configmap)
        elif kind == "DELETED":
            live.absent(source, "deleted")

    return ConfigMapHandlers(on_sync, on_event)


def settling_configmap_handlers(live: GlobalPolicy, namespace: str, name: str) -> ConfigMapHandlers:
    """:func:`global_configmap_handlers`, with ``live.settled`` false until the first LIST has answered.

    A server that is Ready before its policy is in would answer with the
    built-in defaults for a moment after every start.
    """
    handlers = global_configmap_handlers(live, namespace, name)
    live.settled = False

    async def on_sync(items: list[dict[str, Any]], resource_version: str = "") -> None:
        result = handlers.on_sync(items, resource_version)
        if result is not None:
            await result  # the policy is parsed off the event loop
        live.settled = True

    return ConfigMapHandlers(on_sync, handlers.on_event)


def policy_file_at_start(live: GlobalPolicy, path: str, interval: float) -> PolicyFile:
    """``--policy FILE``, read once now: a file must be good at start (a typo fails the rollout, not serves defaults).

    Raises :class:`serving.process.StartError` saying what is wrong with it.
    """
    from serving.process import StartError

    policy_file = PolicyFile(live, path, interval=interval)
    if not policy_file.check_now():
        if policy_file.unreadable is not None:
            raise StartError(f"policy {path}: {policy_file.unreadable}")
        assert live.rejected is not None
        raise StartError(live.rejected.message)
    return policy_file

