"""Look at a certificate directory the way the apiserver will, before it has to.

A webhook whose certificate expired, lacks the ``svc.ns.svc`` name, or was
signed by a CA other than the one in ``caBundle`` fails every pod CREATE in
the cluster (or silently skips injection with ``failurePolicy: Ignore``).
Each of those is cheap to detect offline, so ``meshfit certs check`` and the
webhook's start-up report all of them at once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certs.generate import CA_CERT_FILE, CERT_FILE, KEY_FILE
from certs.names import dns_name_covered, ip_covered, service_dns_names


class CertLoadError(Exception):
    """A certificate or key file is missing or cannot be parsed."""


@dataclass(frozen=True)
class CertReport:
    """What is in the directory and what is wrong with it."""

    directory: Path
    subject: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    #: Negative once expired; computed against the ``now`` the report was made for.
    seconds_until_expiry: float
    #: True when ``not_before`` is still ahead (a generator with a clock running fast).
    not_yet_valid: bool
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    #: The names and addresses asked for (service names plus extras), and which are absent.
    required: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    key_matches: bool = False
    #: ``None`` when there is no ``ca.crt`` to check against.
    chains_to_ca: bool | None = None
    chain_error: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def expired(self) -> bool:
        return self.seconds_until_expiry <= 0

    @property
    def sans_covered(self) -> bool:
        return not self.missing

    def problems(self, min_days: float = 0) -> list[str]:
        """Every reason the directory is not fit to serve, as lines a person can act on."""
        found: list[str] = []
        if self.expired:
            found.append(f"certificate expired at {self.not_after.isoformat()}")
        elif self.seconds_until_expiry < min_days * 86400:
            days_left = self.seconds_until_expiry / 86400
            found.append(
                f"certificate expires in {days_left:.1f} days (at {self.not_after.isoformat()}), less than {min_days:g}"
            )
        if self.not_yet_valid:
            found.append(f"certificate not valid before {self.not_before.isoformat()}")
        if self.missing:
            found.append("SANs missing: " + ", ".join(self.missing))
        if not self.key_matches:
            found.append(f"{KEY_FILE} does not match {CERT_FILE}")
        if self.chains_to_ca is False:
            found.append(f"{CERT_FILE} does not chain to {CA_CERT_FILE}: {self.chain_error}")
        return found


def load_cert(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (the leaf, in a chain file)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertLoadError(f"{path} is not a PEM certificate: {exc}") from exc


def load_key(path: Path) -> PrivateKeyTypes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertLoadError(f"{path} is not an unencrypted PEM private key: {exc}") from exc


def key_matches_cert(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Compare SubjectPublicKeyInfo bytes: works for every key type alike."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def chain_error(cert: x509.Certificate, ca: x509.Certificate) -> str:
    """Why ``cert`` was not issued by ``ca``, or ``""`` when it was.

    A single-level check is all the webhook ever needs: ``caBundle`` holds the
    issuing CA itself, never an intermediate.
    """
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"{CA_CERT_FILE} has no basicConstraints, so it is not a CA"
    if not constraints.ca:
        return f"{CA_CERT_FILE} is not a CA (basicConstraints CA:FALSE)"
    try:
        cert.verify_directly_issued_by(ca)
    except ValueError as exc:
        return str(exc)
    except InvalidSignature:
        return f"signature does not verify with the key of {CA_CERT_FILE}"
    except TypeError as exc:
        return f"unsupported CA key: {exc}"
    return ""


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (
        list(ext.get_values_for_type(x509.DNSName)),
        [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)],
    )


def inspect_dir(
    directory: str | os.PathLike[str],
    *,
    service: str | None = None,
    namespace: str | None = None,
    ips: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    cluster_domain: str = "cluster.local",
    now: dt.datetime | None = None,
) -> CertReport:
    """Report on ``tls.crt``/``tls.key`` (required) and ``ca.crt`` (checked when present).

    The service names are required only when both ``service`` and ``namespace``
    are given; extra ``ips``/``dns_names`` are required whenever given.
    Raises :class:`CertLoadError` when the pair itself cannot be read.
    """
    base = Path(directory)
    cert = load_cert(base / CERT_FILE)
    key = load_key(base / KEY_FILE)
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)

    required_names: list[str] = []
    if service and namespace:
        required_names += service_dns_names(service, namespace, cluster_domain)
    elif service or namespace:
        raise ValueError("service and namespace go together")
    required_names += [n.strip().rstrip(".").lower() for n in dns_names if n.strip()]
    required_ips = list(ips)

    san_dns, san_ips = _sans(cert)
    missing = [n for n in required_names if not dns_name_covered(n, san_dns)]
    missing += [ip for ip in required_ips if not ip_covered(ip, san_ips)]

    warnings: list[str] = []
    chains: bool | None = None
    error = ""
    ca_path = base / CA_CERT_FILE
    if ca_path.exists():
        try:
            error = chain_error(cert, load_cert(ca_path))
        except CertLoadError as exc:
            error = str(exc)
        chains = not error
    else:
        warnings.append(f"no {CA_CERT_FILE}: chain not checked")

    return CertReport(
        directory=base,
        subject=cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        seconds_until_expiry=(cert.not_valid_after_utc - now).total_seconds(),
        not_yet_valid=now < cert.not_valid_before_utc,
        dns_names=tuple(san_dns),
        ip_addresses=tuple(san_ips),
        required=tuple(required_names + required_ips),
        missing=tuple(missing),
        key_matches=key_matches_cert(key, cert),
        chains_to_ca=chains,
        chain_error=error,
        warnings=tuple(warnings),
    )
