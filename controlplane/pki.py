"""Throwaway PKI for one LocalCluster: a CA, serving certs, service-account keys.

Every cluster gets fresh keys in its own work dir, so nothing secret is ever
committed and tests cannot depend on one another's credentials. The keys and
certificates are built by :mod:`certs.generate`, as the webhook's are, so the
local cluster trusts exactly the kind of certificate meshfit ships; only the
validity (a test session) and the file layout are the cluster's own. EC P-256
keeps generation in the low milliseconds, which matters for startup time; the
service-account key is RSA because that is what every Kubernetes client and
verifier accepts without configuration.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.generate import (
    CLOCK_SKEW,
    PrivateKey,
    build_ca,
    build_serving_cert,
    new_private_key,
    private_key_pem,
    write_atomic,
)

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA key and certificate kept in memory to sign leaf certs."""

    key: PrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class KeyPair:
    """Paths of a PEM certificate (or public key) and its private key."""

    cert: Path
    key: Path


def _window() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - CLOCK_SKEW, now + _VALIDITY


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    write_atomic(path, data, 0o600 if private else 0o644)
    return path


def new_ca(common_name: str = "meshfit-local-cluster-ca") -> CertificateAuthority:
    """A self-signed CA valid for two days (a test session, with margin)."""
    key = new_private_key("ecdsa")
    not_before, not_after = _window()
    cert = build_ca(key, common_name=common_name, not_before=not_before, not_after=not_after, key_type="ecdsa")
    return CertificateAuthority(key=key, cert=cert)


def write_ca(ca: CertificateAuthority, path: Path) -> Path:
    """Write only the CA certificate: its key never leaves memory."""
    return _write(path, ca.pem())


def issue_serving_cert(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
) -> KeyPair:
    """A TLS server cert signed by ``ca``, written as ``<name>.crt``/``<name>.key``."""
    key = new_private_key("ecdsa")
    not_before, not_after = _window()
    cert = build_serving_cert(
        key,
        ca_cert=ca.cert,
        ca_key=ca.key,
        dns_names=dns_names,
        ip_addresses=[ipaddress.ip_address(ip) for ip in ip_addresses],
        not_before=not_before,
        not_after=not_after,
        key_type="ecdsa",
    )
    return KeyPair(
        cert=_write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
        key=_write(directory / f"{name}.key", private_key_pem(key), private=True),
    )


def write_service_account_keys(directory: Path) -> KeyPair:
    """The key pair kube-apiserver signs and verifies service-account tokens with.

    ``cert`` holds the public key (``--service-account-key-file``), ``key`` the
    private key (``--service-account-signing-key-file``).
    """
    key = new_private_key("rsa")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(
        cert=_write(directory / "sa.pub", public),
        key=_write(directory / "sa.key", private_key_pem(key), private=True),
    )
