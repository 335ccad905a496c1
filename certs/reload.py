"""Serve whatever certificate is in the directory now, without a restart.

Certificates in Kubernetes rotate underneath a running process: cert-manager
or an operator rewrites the TLS Secret and the kubelet swaps the mounted
``..data`` symlink to a new timestamped directory. A webhook that read its
certificate once at start serves the old one until it expires, and then
every pod CREATE in the cluster fails. So :class:`CertReloader` polls the
files' *content* (the symlink swap keeps paths, and often mtimes, unchanged)
and loads a changed pair into the ``ssl.SSLContext`` the server was started
with: handshakes from then on present the new certificate, connections
already open keep the session they negotiated.

A pair caught half-written, or a key that does not match its certificate, is
logged and ignored: the old certificate keeps serving and the next poll
tries again. So is a rotated pair outside its validity window (expired, or
not valid yet: a generator whose clock runs ahead): loading it would fail
every new handshake on every replica at once. Such a pair is re-checked on
every poll, so a not-yet-valid one is taken the moment it becomes valid.
:attr:`CertReloader.refused` says why the latest rotation was refused, for
readiness; :attr:`CertReloader.failures` counts refusals, for metrics.

The first pair is loaded even when it is outside its window (there is no
good one to keep): the server then reports not ready, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs.generate import CERT_FILE, KEY_FILE
from certs.inspect import CertLoadError, key_matches_cert
from serving.polling import poll

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0


def server_context() -> ssl.SSLContext:
    """A server-side context: TLS 1.2 at least (the apiserver speaks 1.2 and 1.3), HTTP/1.1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """A path holding ``data``, for ``load_cert_chain``, which reads only from paths.

    Loading from the very bytes that were validated (not from the mounted
    paths, which may change again between the check and the load) is what
    makes a rotation race harmless. An anonymous memory file keeps the private
    key off disk where the platform has one.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("meshfit-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(prefix="meshfit-tls-", suffix=".pem")
    try:
        os.write(fd, data)
        os.close(fd)
        yield name
    finally:
        os.unlink(name)


class CertReloader:
    """Holds the serving ``SSLContext`` and keeps it loaded with the directory's current pair.

    ``context`` is fixed for the reloader's lifetime: hand it to the server
    once. Rotation normally loads the new pair into that same context. An
    OpenSSL context keeps one certificate *per key type*, so a rotation that
    changes the key type (ECDSA to RSA, say) cannot replace the old
    certificate in place; for that case the new pair goes into a fresh
    context and ``context``'s server-name callback switches each new
    handshake over to it.

    ``configure(context)`` is applied to every context the reloader creates,
    ``context`` and each fresh one alike, before any certificate goes in:
    what a server sets beyond its certificate (client-certificate
    verification, say) must survive a switch to a fresh context, or the first
    key-type rotation would silently drop it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        interval: float = DEFAULT_INTERVAL,
        cert_file: str = CERT_FILE,
        key_file: str = KEY_FILE,
        require: bool = True,
        configure: Callable[[ssl.SSLContext], None] | None = None,
    ) -> None:
        """Load the pair now; with ``require`` (the default) a missing or bad pair raises.

        ``require=False`` is for a server that may start before its Secret is
        populated: it reports not ``valid`` until a good pair appears. An
        exception from ``configure`` on the first context propagates.
        """
        self.directory = Path(directory)
        self.interval = interval
        self.cert_path = self.directory / cert_file
        self.key_path = self.directory / key_file
        self.configure = configure
        self.context = self._new_context()
        self.not_before: dt.datetime | None = None
        self.not_after: dt.datetime | None = None
        self.serial: int | None = None
        #: Successful loads after the first, and changed pairs that were rejected.
        self.reloads = 0
        self.failures = 0
        self.last_error = ""
        #: Why the pair in the directory now is not the one served (``None`` when it is).
        self.refused: str | None = None
        self._refused_digest: bytes | None = None
        self._seen_digest: bytes | None = None
        self._loaded_digest: bytes | None = None
        self._key_kind: str | None = None
        self._switched: ssl.SSLContext | None = None
        self.check_now()
        if require and self.serial is None:
            raise CertLoadError(self.last_error or f"no certificate loaded from {self.directory}")

    @property
    def loaded(self) -> bool:
        return self.serial is not None

    @property
    def valid(self) -> bool:
        """For readiness: a pair is loaded and it is inside its validity window right now."""
        if self.not_after is None or self.not_before is None:
            return False
        now = dt.datetime.now(dt.UTC)
        return self.not_before <= now < self.not_after

    def seconds_until_expiry(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until the served certificate expires (negative after); ``None`` before any load."""
        if self.not_after is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds()

    def check_now(self) -> bool:
        """Poll once; return True when a new pair was loaded.

        Never raises for a bad pair: a rotation caught between writing the
        key and the certificate is the expected case, not an error.
        """
        try:
            cert_pem = self.cert_path.read_bytes()
            key_pem = self.key_path.read_bytes()
        except OSError as exc:
            return self._reject(b"unreadable:" + str(exc).encode(), f"cannot read pair: {exc}")

        digest = hashlib.sha256(len(cert_pem).to_bytes(8, "big") + cert_pem + key_pem).digest()
        if digest == self._seen_digest:
            return False
        if digest == self._loaded_digest:
            # Back to the pair being served after a bad interlude: nothing to load.
            self._seen_digest = digest
            self.refused = None
            return False

        try:
            leaf, kind = _validate(cert_pem, key_pem)
            if self.loaded:
                outside = _outside_validity(leaf)
                if outside:
                    return self._refuse_for_now(digest, outside)
            # OpenSSL gets the final word on what it will accept, on a scratch
            # context first: a failed load_cert_chain can leave a context with
            # a certificate and no usable key.
            scratch = self._new_context()
            with _pem_file(key_pem + b"\n" + cert_pem) as path:
                scratch.load_cert_chain(path)
                self._install(path, scratch, kind)
        except (CertLoadError, ssl.SSLError, ValueError, OSError) as exc:
            return self._reject(digest, str(exc))

        first = self.serial is None
        self._seen_digest = self._loaded_digest = digest
        self.serial = leaf.serial_number
        self.not_before = leaf.not_valid_before_utc
        self.not_after = leaf.not_valid_after_utc
        self.last_error = ""
        self.refused = None
        self._refused_digest = None
        if not first:
            self.reloads += 1
        log.info(
            "serving certificate %s from %s (serial %x, not after %s)",
            "loaded" if first else "rotated",
            self.directory,
            leaf.serial_number,
            self.not_after.isoformat(),
        )
        return True

    def _new_context(self) -> ssl.SSLContext:
        context = server_context()
        if self.configure is not None:
            self.configure(context)
        return context

    def _install(self, path: str, scratch: ssl.SSLContext, kind: str) -> None:
        if self._switched is None and self._key_kind in (None, kind):
            self.context.load_cert_chain(path)
        else:
            if self._switched is None:
                log.warning(
                    "key type changed from %s to %s: switching new handshakes to a fresh context",
                    self._key_kind,
                    kind,
                )
                self.context.sni_callback = self._select_context
            self._switched = scratch
        self._key_kind = kind

    def _select_context(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        # Called by OpenSSL for every ClientHello, SNI or not.
        if self._switched is not None:
            ssl_object.context = self._switched

    def _refuse_for_now(self, digest: bytes, reason: str) -> bool:
        """Refuse a pair outside its validity window; unlike :meth:`_reject`, look at it again next poll."""
        if digest != self._refused_digest:
            self._refused_digest = digest
            self.failures += 1
            self.last_error = self.refused = reason
            log.warning("refusing the new pair in %s (%s): keeping the current one (serial %x, not after %s)",
                        self.directory, reason, self.serial or 0,
                        self.not_after.isoformat() if self.not_after else "?")
        return False

    def _reject(self, digest: bytes, reason: str) -> bool:
        if digest != self._seen_digest:
            # Log once per distinct bad state, not on every poll.
            self._seen_digest = digest
            self.failures += 1
            self.last_error = reason
            if self.loaded:
                self.refused = reason
                log.warning("ignoring new pair in %s (%s): keeping the current one", self.directory, reason)
            else:
                log.error("no usable pair in %s: %s", self.directory, reason)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        await poll(self.check_now, self.interval, stop, "certificate poll")


def _validate(cert_pem: bytes, key_pem: bytes) -> tuple[x509.Certificate, str]:
    """Parse the pair and check the key belongs to the leaf; return the leaf and its key kind."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as exc:
        raise CertLoadError(f"{CERT_FILE} is not a PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertLoadError(f"{KEY_FILE} is not an unencrypted PEM private key: {exc}") from exc
    leaf = chain[0]
    if not key_matches_cert(key, leaf):
        raise CertLoadError(f"{KEY_FILE} does not match {CERT_FILE}")
    return leaf, _key_kind(key)


def _outside_validity(leaf: x509.Certificate, now: dt.datetime | None = None) -> str:
    """Why ``leaf`` cannot serve right now (expired, or not valid yet), or ``""``."""
    now = now or dt.datetime.now(dt.UTC)
    if now >= leaf.not_valid_after_utc:
        return f"certificate expired at {leaf.not_valid_after_utc.isoformat()}"
    if now < leaf.not_valid_before_utc:
        return f"certificate not valid before {leaf.not_valid_before_utc.isoformat()}"
    return ""


def _key_kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa"
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    return type(key).__name__
