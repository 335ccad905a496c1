"""Create a throw-away CA and the webhook's serving certificate.

The kube-apiserver calls the webhook over HTTPS and trusts exactly the
``caBundle`` written into the MutatingWebhookConfiguration, so the webhook
needs its own small CA rather than a public one. :func:`generate` makes a
throw-away CA whose private key is *not* written out: every run is a new CA
and a new caBundle (tests, one-off setups). What ``make manifests`` uses is
:mod:`certs.authority`, which keeps the CA and its key so that serving
certificates rotate under it without touching the caBundle.

Files are written the way Kubernetes expects them in a TLS Secret
(``tls.crt``, ``tls.key``) plus ``ca.crt``, each atomically (temporary file,
fsync, rename) so a reader polling the directory never sees half a file.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.names import service_dns_names

KeyType = Literal["ecdsa", "rsa"]
KEY_TYPES: tuple[KeyType, ...] = ("ecdsa", "rsa")

CA_CERT_FILE = "ca.crt"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

#: Certificates start this far in the past so a node whose clock runs a little
#: behind the generator's does not reject a brand-new certificate as "not yet valid".
CLOCK_SKEW = dt.timedelta(minutes=5)

RSA_KEY_SIZE = 2048

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class GeneratedCerts:
    """Where the new pair landed, and what the webhook configuration needs from it."""

    directory: Path
    ca_cert_path: Path
    cert_path: Path
    key_path: Path
    #: base64 of the ``ca.crt`` PEM: the value of ``webhooks[].clientConfig.caBundle``.
    ca_bundle: str
    serial: int
    not_after: dt.datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: KeyType


def new_private_key(key_type: KeyType) -> PrivateKey:
    """ECDSA P-256 by default: small, fast handshakes, accepted by every apiserver."""
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_SIZE)
    raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def private_key_pem(key: PrivateKey) -> bytes:
    """The unencrypted PKCS#8 PEM a TLS Secret's ``tls.key`` (and any Kubernetes component) reads."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(*, ca: bool, key_type: KeyType) -> x509.KeyUsage:
    # keyEncipherment only means something for RSA key transport; an EC key
    # with it set is rejected by strict verifiers.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=(not ca and key_type == "rsa"),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def build_ca(
    key: PrivateKey,
    *,
    common_name: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    key_type: KeyType,
) -> x509.Certificate:
    """A self-signed CA that may sign leaf certificates only (pathlen 0)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshfit"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, key_type=key_type), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )


def build_serving_cert(
    key: PrivateKey,
    *,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    dns_names: Sequence[str],
    ip_addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
    not_before: dt.datetime,
    not_after: dt.datetime,
    key_type: KeyType,
) -> x509.Certificate:
    """A leaf for TLS servers only (serverAuth), named by SANs; the CN is informational."""
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ip) for ip in ip_addresses]
    if not sans:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    common_name = dns_names[0] if dns_names else str(ip_addresses[0])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, key_type=key_type), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary sibling and rename, so readers see the old file or the new one.

    The temporary file is created with its final mode, so a private key is
    never readable by others, not even for an instant.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable: without it a crash can leave the old names in place."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    directory.mkdir(parents=True, mode=0o700)
    # mkdir's mode is filtered by the umask; a key directory must be private regardless.
    directory.chmod(0o700)


def _parse_ips(ips: Iterable[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    parsed = []
    for raw in ips:
        try:
            parsed.append(ipaddress.ip_address(raw))
        except ValueError:
            raise ValueError(f"not an IP address: {raw!r}") from None
    return parsed


def _dedupe(names: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        name = name.strip().rstrip(".").lower()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def generate(
    out_dir: str | os.PathLike[str],
    *,
    service: str,
    namespace: str,
    ips: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    days: int = 365,
    key_type: KeyType = "ecdsa",
    cluster_domain: str = "cluster.local",
    now: dt.datetime | None = None,
) -> GeneratedCerts:
    """Create a fresh CA and a serving certificate for ``service.namespace`` in ``out_dir``.

    ``now`` exists so tests (and anyone reproducing an incident) can mint a
    certificate that is already expired or about to be, without waiting.
    Both certificates expire together: the CA is only ever used to sign
    this one leaf, so outliving it buys nothing.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    directory = Path(out_dir)
    ip_list = _parse_ips(ips)
    names = _dedupe([*service_dns_names(service, namespace, cluster_domain), *dns_names])

    issued = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    issued = issued.replace(microsecond=0)
    not_before = issued - CLOCK_SKEW
    not_after = issued + dt.timedelta(days=days)

    ca_key = new_private_key(key_type)
    ca_cert = build_ca(
        ca_key,
        common_name=f"meshfit {service}.{namespace} CA",
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
    )
    key = new_private_key(key_type)
    cert = build_serving_cert(
        key,
        ca_cert=ca_cert,
        ca_key=ca_key,
        dns_names=names,
        ip_addresses=ip_list,
        not_before=not_before,
        not_after=not_after,
        key_type=key_type,
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = private_key_pem(key)

    _ensure_dir(directory)
    # A kept CA (certs.authority) would no longer match this throw-away one: drop its key and bundle.
    for stale in ("ca.key", "ca-bundle.crt"):
        with contextlib.suppress(FileNotFoundError):
            (directory / stale).unlink()
    paths = (directory / CA_CERT_FILE, directory / CERT_FILE, directory / KEY_FILE)
    # CA first so a poller that sees the new leaf can already verify it; the
    # key before the leaf is arbitrary: a reader that sees a mismatched pair
    # must (and the reloader does) wait for the next consistent one.
    write_atomic(paths[0], ca_pem, 0o644)
    write_atomic(paths[2], key_pem, 0o600)
    write_atomic(paths[1], cert_pem, 0o644)
    _fsync_dir(directory)

    return GeneratedCerts(
        directory=directory,
        ca_cert_path=paths[0],
        cert_path=paths[1],
        key_path=paths[2],
        ca_bundle=base64.b64encode(ca_pem).decode("ascii"),
        serial=cert.serial_number,
        not_after=cert.not_valid_after_utc,
        dns_names=tuple(names),
        ip_addresses=tuple(str(ip) for ip in ip_list),
        key_type=key_type,
    )
