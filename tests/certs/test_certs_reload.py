"""CertReloader under a real TLS server on loopback, rotated the way the kubelet does it.

The kubelet mounts a Secret as ``<dir>/tls.crt -> ..data/tls.crt`` with
``..data -> ..<timestamp>/`` and rotates by writing a new timestamped
directory and renaming a fresh ``..data`` symlink over the old one. The
tests rotate exactly like that, under a server that keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import ssl
from pathlib import Path

import pytest
from client_certs import client_pair
from cryptography import x509

from certs.generate import GeneratedCerts, generate
from certs.inspect import CertLoadError
from certs.reload import CertReloader

SERVICE, NAMESPACE = "meshfit-webhook", "meshfit"
SERVER_NAME = f"{SERVICE}.{NAMESPACE}.svc"


class SecretVolume:
    """A directory laid out like a mounted Secret, rotated by symlink swap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()

    def rotate(self, **kwargs) -> GeneratedCerts:
        self.generation += 1
        version = f"..2025_01_01_00_00_{self.generation:02d}"
        result = generate(self.root / version, service=SERVICE, namespace=NAMESPACE, ips=["127.0.0.1"], **kwargs)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(version)
        os.replace(tmp_link, self.root / "..data")
        for name in ("ca.crt", "tls.crt", "tls.key"):
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        return result

    def swap_to_files(self, files: dict[str, bytes]) -> None:
        """Publish arbitrary file contents (a broken pair) as the next generation."""
        self.generation += 1
        version = self.root / f"..2025_01_01_00_00_{self.generation:02d}"
        version.mkdir()
        for name, data in files.items():
            (version / name).write_bytes(data)
        tmp_link = self.root / "..data_tmp"
        tmp_link.symlink_to(version.name)
        os.replace(tmp_link, self.root / "..data")


def client_context(ca: GeneratedCerts) -> ssl.SSLContext:
    """Trusts only this CA (a cafile means no system store) and checks the host name, as the apiserver does."""
    return ssl.create_default_context(cafile=str(ca.ca_cert_path))


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @property
    def serial(self) -> int:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number

    async def roundtrip(self, payload: bytes) -> bytes:
        self.writer.write(payload + b"\n")
        await self.writer.drain()
        return (await asyncio.wait_for(self.reader.readline(), 5)).rstrip(b"\n")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


async def connect(port: int, ca: GeneratedCerts, server_hostname: str | None = SERVER_NAME) -> Connection:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca), server_hostname=server_hostname),
        5,
    )
    return Connection(reader, writer)


@pytest.fixture
async def served(tmp_path: Path):
    volume = SecretVolume(tmp_path / "secret")
    first = volume.rotate()
    reloader = CertReloader(volume.root, interval=0.05)
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=reloader.context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield volume, first, reloader, port
    finally:
        server.close()
        await server.wait_closed()


async def test_rotation_reaches_new_handshakes_and_spares_open_connections(served) -> None:
    volume, first, reloader, port = served
    assert reloader.serial == first.serial and reloader.valid

    old = await connect(port, first)
    assert old.serial == first.serial
    assert await old.roundtrip(b"before") == b"before"
    # Verified by IP SAN as well as by DNS name.
    by_ip = await connect(port, first, server_hostname=None)
    assert by_ip.serial == first.serial
    await by_ip.close()

    second = volume.rotate()
    assert reloader.check_now() is True
    assert reloader.serial == second.serial
    assert reloader.reloads == 1
    assert reloader.not_after == second.not_after

    new = await connect(port, second)
    assert new.serial == second.serial
    assert await new.roundtrip(b"new") == b"new"

    # The connection opened before the rotation keeps working on its old session.
    assert await old.roundtrip(b"after") == b"after"
    assert old.serial == first.serial

    # A client that trusts only the old CA can no longer complete a handshake.
    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(port, first)

    # Nothing changed: nothing reloaded.
    assert reloader.check_now() is False
    assert reloader.reloads == 1
    for conn in (old, new):
        await conn.close()


async def test_bad_or_half_written_pairs_are_ignored(served, caplog) -> None:
    volume, first, reloader, port = served
    other = generate(volume.root / "elsewhere", service=SERVICE, namespace=NAMESPACE)
    good_cert = first.cert_path.read_bytes()

    # Key from another pair.
    volume.swap_to_files({"tls.crt": good_cert, "tls.key": other.key_path.read_bytes()})
    assert reloader.check_now() is False
    assert reloader.failures == 1 and "does not match" in reloader.last_error
    # The same bad state is reported once, not on every poll.
    assert reloader.check_now() is False
    assert reloader.failures == 1

    # Half a certificate.
    volume.swap_to_files({"tls.crt": good_cert[: len(good_cert) // 2], "tls.key": first.key_path.read_bytes()})
    assert reloader.check_now() is False
    assert reloader.failures == 2

    # Files missing altogether.
    volume.swap_to_files({})
    assert reloader.check_now() is False
    assert reloader.failures == 3

    assert reloader.serial == first.serial and reloader.valid
    conn = await connect(port, first)
    assert conn.serial == first.serial
    await conn.close()

    # Back to the pair already served: no reload counted.
    volume.swap_to_files({"tls.crt": good_cert, "tls.key": first.key_path.read_bytes()})
    assert reloader.check_now() is False
    assert reloader.reloads == 0

    # And a good rotation after all that goes through.
    third = volume.rotate()
    assert reloader.check_now() is True
    conn = await connect(port, third)
    assert conn.serial == third.serial
    await conn.close()
    assert "keeping the current one" in caplog.text


async def test_key_type_change_still_reaches_new_handshakes(served) -> None:
    volume, first, reloader, port = served
    rsa_pair = volume.rotate(key_type="rsa")
    assert reloader.check_now() is True
    for _ in range(2):
        conn = await connect(port, rsa_pair)
        assert conn.serial == rsa_pair.serial
        await conn.close()

    # Further rotations, of either type, keep working after the switch.
    for key_type in ("rsa", "ecdsa"):
        pair = volume.rotate(key_type=key_type)
        assert reloader.check_now() is True
        conn = await connect(port, pair)
        assert conn.serial == pair.serial
        await conn.close()


async def test_configure_survives_a_key_type_change(tmp_path: Path) -> None:
    """Client-certificate verification set through ``configure`` is there on the fresh context too."""
    volume = SecretVolume(tmp_path / "secret")
    volume.rotate()
    client_ca, client_cert, client_key = client_pair(tmp_path)
    configured: list[ssl.SSLContext] = []

    def require_client_certificate(context: ssl.SSLContext) -> None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        configured.append(context)

    reloader = CertReloader(volume.root, configure=require_client_certificate)
    assert reloader.context in configured and reloader.context.verify_mode == ssl.CERT_REQUIRED
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=reloader.context)
    port = server.sockets[0].getsockname()[1]

    async def answered(pair: GeneratedCerts, *, with_certificate: bool) -> bool:
        context = client_context(pair)
        if with_certificate:
            context.load_cert_chain(str(client_cert), str(client_key))
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=SERVER_NAME), 5
            )
            conn = Connection(reader, writer)
            try:
                return await conn.roundtrip(b"ping") == b"ping"
            finally:
                await conn.close()
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            return False

    try:
        rsa_pair = volume.rotate(key_type="rsa")
        assert reloader.check_now() is True
        assert await answered(rsa_pair, with_certificate=True)
        assert not await answered(rsa_pair, with_certificate=False), "the fresh context still asks for one"
        assert all(c.verify_mode == ssl.CERT_REQUIRED for c in configured) and len(configured) >= 3
    finally:
        server.close()
        await server.wait_closed()


async def test_run_loop_picks_up_rotation_and_stops(served) -> None:
    volume, _first, reloader, port = served
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.run(stop))
    second = volume.rotate()
    for _ in range(200):
        if reloader.serial == second.serial:
            break
        await asyncio.sleep(0.02)
    assert reloader.serial == second.serial
    conn = await connect(port, second)
    assert conn.serial == second.serial
    await conn.close()
    stop.set()
    await asyncio.wait_for(task, 2)


def test_tls_12_is_the_floor(tmp_path: Path) -> None:
    generate(tmp_path, service=SERVICE, namespace=NAMESPACE)
    reloader = CertReloader(tmp_path)
    assert reloader.context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_missing_pair_raises_unless_not_required(tmp_path: Path) -> None:
    with pytest.raises(CertLoadError):
        CertReloader(tmp_path)
    reloader = CertReloader(tmp_path, require=False)
    assert not reloader.loaded and not reloader.valid
    assert reloader.seconds_until_expiry() is None
    generate(tmp_path, service=SERVICE, namespace=NAMESPACE, days=10)
    assert reloader.check_now() is True
    assert reloader.valid
    assert 9 * 86400 < (reloader.seconds_until_expiry() or 0) <= 10 * 86400


def test_expired_certificate_loads_but_is_not_valid(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    generate(tmp_path, service=SERVICE, namespace=NAMESPACE, days=1, now=now - dt.timedelta(days=2))
    reloader = CertReloader(tmp_path)
    assert reloader.loaded and not reloader.valid
    assert (reloader.seconds_until_expiry() or 0) < 0


@pytest.mark.parametrize(
    ("shift", "days", "why"),
    [(-dt.timedelta(days=3), 1, "certificate expired at"), (dt.timedelta(hours=2), 30, "not valid before")],
    ids=["expired", "not-yet-valid"],
)
def test_a_rotation_outside_its_validity_window_is_refused_and_the_good_pair_kept(
    tmp_path: Path, shift: dt.timedelta, days: int, why: str
) -> None:
    volume = SecretVolume(tmp_path / "secret")
    good = volume.rotate()
    reloader = CertReloader(volume.root, interval=0.05)
    volume.rotate(days=days, now=dt.datetime.now(dt.UTC) + shift)
    for _ in range(3):  # looked at again on every poll, refused and counted once
        assert reloader.check_now() is False
    assert reloader.serial == good.serial and reloader.valid
    assert reloader.refused is not None and why in reloader.refused
    assert reloader.failures == 1 and reloader.reloads == 0
    served = _served_serial(volume.root, reloader.context)
    assert served == good.serial, "new handshakes still get the good certificate"

    fixed = volume.rotate()
    assert reloader.check_now() is True
    assert reloader.serial == fixed.serial and reloader.refused is None and reloader.reloads == 1


def test_a_refused_pair_that_becomes_valid_is_taken_then(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import certs.reload as reload_module

    volume = SecretVolume(tmp_path / "secret")
    volume.rotate()
    reloader = CertReloader(volume.root)
    later = volume.rotate(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert reloader.check_now() is False and reloader.refused
    real = reload_module._outside_validity
    monkeypatch.setattr(reload_module, "_outside_validity",
                        lambda leaf: real(leaf, dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)))
    assert reloader.check_now() is True, "an hour later the same files are taken, without a change"
    assert reloader.serial == later.serial and reloader.refused is None


def _served_serial(directory: Path, context: ssl.SSLContext) -> int:
    """The serial a client's handshake with ``context`` gets (over a socketpair, no port)."""
    import socket

    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE  # ca.crt in the directory is the refused pair's
    a, b = socket.socketpair()
    server = context.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    client = client_ctx.wrap_socket(b, do_handshake_on_connect=False, server_hostname=SERVER_NAME)
    server.setblocking(False)
    client.setblocking(False)
    for _ in range(100):
        done = 0
        for side in (client, server):
            try:
                side.do_handshake()
                done += 1
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if done == 2:
            break
    der = client.getpeercert(binary_form=True)
    assert der is not None
    server.close()
    client.close()
    return x509.load_der_x509_certificate(der).serial_number
