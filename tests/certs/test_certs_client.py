"""The scheduler's client certificate: issued under its CA, it opens a TLS session the extender requires.

A real TLS server on loopback is configured as ``meshfit extender serve
--tls-client-ca`` configures its listener (client certificates required,
verified against the client CA); the client presents what ``meshfit certs
client`` wrote. A certificate from another CA, or none, is refused.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.authority import issue, issue_client, make_ca
from cli.main import main


def _server_context(serving: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca / "ca.crt"))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(serving / "tls.crt"), str(serving / "tls.key"))
    return context


def _client_context(serving: Path, client: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(serving / "ca.crt"))
    if client is not None:
        context.load_cert_chain(str(client / "client.crt"), str(client / "client.key"))
    return context


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    seen: list[str] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cert = writer.get_extra_info("peercert") or {}
        seen.extend(v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName")
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server)
    try:
        port = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1")
        data = await reader.read(2)
        writer.close()
        assert data == b"ok"
        return seen[0]
    finally:
        listener.close()


def test_the_issued_client_certificate_is_admitted_and_a_foreign_one_is_not(tmp_path: Path) -> None:
    serving, client, other = tmp_path / "serving", tmp_path / "client", tmp_path / "other"
    make_ca(serving, common_name="meshfit extender CA")
    issue(serving, service="meshfit-extender", namespace="meshfit-system", ips=["127.0.0.1"])
    make_ca(client, common_name="meshfit scheduler client CA")
    issue_client(client, common_name="system:kube-scheduler")
    make_ca(other, common_name="someone else")
    issue_client(other, common_name="system:kube-scheduler")
    cert = x509.load_pem_x509_certificate((client / "client.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-scheduler"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    server = _server_context(serving, client)
    assert asyncio.run(_handshake(server, _client_context(serving, client))) == "system:kube-scheduler"
    for refused in (other, None):
        with pytest.raises((ssl.SSLError, ConnectionError, AssertionError, IndexError)):
            asyncio.run(_handshake(server, _client_context(serving, refused)))


def test_certs_client_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "ca", "--cert-dir", str(tmp_path), "--common-name", "meshfit scheduler client CA"]) == 0
    assert main(["certs", "client", "--cert-dir", str(tmp_path)]) == 0
    assert "CN=system:kube-scheduler" in capsys.readouterr().err
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "meshfit scheduler client CA"
    assert oct((tmp_path / "client.key").stat().st_mode & 0o777) == "0o600"
    assert main(["certs", "client", "--cert-dir", str(tmp_path / "missing")]) == 1
