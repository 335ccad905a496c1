"""A kept CA that serving certificates rotate under, and a CA rotation in steps the apiserver can follow.

The apiserver trusts exactly the ``caBundle`` of the webhook configuration,
and the webhook's pods read their pair from a Secret the kubelet refreshes a
minute or so after it changes. Minting a new CA with every serving
certificate changes the caBundle at once and the pair only later: in
between, every call fails TLS and (``failurePolicy: Ignore``) pods are
created unmeshed. So a certificate directory made here keeps its CA:

=================  ============================================================
``ca.crt``         the CA that signs the serving certificate
``ca.key``         its private key (0600; what lets a rotation keep the CA)
``ca-bundle.crt``  what the caBundle carries: ``ca.crt``, or during a CA
                   rotation the old CA and the new one
``tls.crt/.key``   the serving pair, signed by ``ca.crt``
=================  ============================================================

A serving rotation (:func:`issue`) changes only the pair; the bundle, and so
the webhook configuration, stays as it is. A CA rotation takes three steps,
each applied (``make manifests`` and ``kubectl apply -k manifests/``) and
given time to land before the next:

1. :func:`begin_ca_rotation`: a new CA is made (``next-ca.crt``/``.key``) and
   the bundle carries both CAs; the serving pair is unchanged. Apply, and
   wait until the apiservers use the new configuration (seconds).
2. :func:`switch_ca`: a serving pair is issued by the new CA, which becomes
   ``ca.crt``; the old one is kept as ``previous-ca.crt`` and stays in the
   bundle. Apply, and wait until every replica serves the new pair (the
   kubelet's Secret refresh: up to a minute or two;
   ``meshfit_webhook_certificate_not_after_timestamp_seconds`` shows it).
3. :func:`finish_ca_rotation`: the bundle carries the new CA only, and the old
   CA's files are removed. Apply.

At every moment the bundle the apiserver holds verifies the pair every
replica serves, so no call fails for TLS.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.generate import (
    CA_CERT_FILE,
    CERT_FILE,
    CLOCK_SKEW,
    KEY_FILE,
    KeyType,
    PrivateKey,
    _dedupe,
    _ensure_dir,
    _fsync_dir,
    _parse_ips,
    build_ca,
    build_serving_cert,
    new_private_key,
    private_key_pem,
    write_atomic,
)
from certs.names import service_dns_names

CA_KEY_FILE = "ca.key"
BUNDLE_FILE = "ca-bundle.crt"
NEXT_CA_CERT, NEXT_CA_KEY = "next-ca.crt", "next-ca.key"
PREVIOUS_CA_CERT = "previous-ca.crt"

#: A CA outlives many serving certificates: rotating it is the rare, stepwise event.
CA_DAYS = 5 * 365
#: Serving certificates are short-lived and rotated under the kept CA.
SERVING_DAYS = 90


class AuthorityError(Exception):
    """The directory is not in the state the step needs; the message says which step comes first."""


@dataclass(frozen=True)
class Issued:
    """A serving pair issued under the kept CA."""

    serial: int
    not_after: dt.datetime
    ca_subject: str


def _now(now: dt.datetime | None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_ca(directory: Path, cert_name: str, key_name: str) -> tuple[x509.Certificate, PrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / cert_name).read_bytes())
        key = serialization.load_pem_private_key((directory / key_name).read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise AuthorityError(f"{directory}: no {Path(exc.filename).name}: make the CA first "
                             "(meshfit certs ca)") from None
    except ValueError as exc:
        raise AuthorityError(f"{directory}/{cert_name}: {exc}") from None
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise AuthorityError(f"{directory}/{key_name}: unsupported key type {type(key).__name__}")
    return cert, key


def _write_ca(directory: Path, cert_name: str, key_name: str, cert: x509.Certificate, key: PrivateKey) -> None:
    write_atomic(directory / key_name, private_key_pem(key), 0o600)
    write_atomic(directory / cert_name, _pem(cert), 0o644)


def _new_ca(common_name: str, days: int, key_type: KeyType, now: dt.datetime | None) -> tuple[x509.Certificate, PrivateKey]:
    issued = _now(now)
    key = new_private_key(key_type)
    cert = build_ca(key, common_name=common_name, not_before=issued - CLOCK_SKEW,
                    not_after=issued + dt.timedelta(days=days), key_type=key_type)
    return cert, key


def _write_bundle(directory: Path, certs: Iterable[x509.Certificate]) -> None:
    write_atomic(directory / BUNDLE_FILE, b"".join(_pem(c) for c in certs), 0o644)


def has_ca(directory: str | os.PathLike[str]) -> bool:
    """Whether the directory holds a kept CA (``ca.crt`` and ``ca.key``)."""
    base = Path(directory)
    return (base / CA_CERT_FILE).is_file() and (base / CA_KEY_FILE).is_file()


def make_ca(directory: str | os.PathLike[str], *, common_name: str = "meshfit webhook CA", days: int = CA_DAYS,
            key_type: KeyType = "ecdsa", now: dt.datetime | None = None) -> x509.Certificate:
    """A new CA in ``directory``; refuses to replace one (that is :func:`begin_ca_rotation`)."""
    base = Path(directory)
    if has_ca(base):
        raise AuthorityError(f"{base} already holds a CA; rotate it with 'meshfit certs rotate-ca begin'")
    _ensure_dir(base)
    cert, key = _new_ca(common_name, days, key_type, now)
    _write_ca(base, CA_CERT_FILE, CA_KEY_FILE, cert, key)
    _write_bundle(base, [cert])
    _fsync_dir(base)
    return cert


def issue(
    directory: str | os.PathLike[str],
    *,
    service: str,
    namespace: str,
    ips: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    days: int = SERVING_DAYS,
    key_type: KeyType = "ecdsa",
    cluster_domain: str = "cluster.local",
    now: dt.datetime | None = None,
) -> Issued:
    """A new serving pair signed by the directory's CA; the CA and the bundle stay as they are.

    The key is written before the certificate: a reader polling the files
    sees the old pair, then a mismatched one (which the reloader ignores),
    then the new one.
    """
    base = Path(directory)
    ca_cert, ca_key = _load_ca(base, CA_CERT_FILE, CA_KEY_FILE)
    issued = _now(now)
    not_after = min(issued + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    key = new_private_key(key_type)
    names = _dedupe([*service_dns_names(service, namespace, cluster_domain), *dns_names])
    cert = build_serving_cert(key, ca_cert=ca_cert, ca_key=ca_key, dns_names=names,
                              ip_addresses=_parse_ips(ips), not_before=issued - CLOCK_SKEW,
                              not_after=not_after, key_type=key_type)
    if not (base / BUNDLE_FILE).exists():
        _write_bundle(base, [ca_cert])
    write_atomic(base / KEY_FILE, private_key_pem(key), 0o600)
    write_atomic(base / CERT_FILE, _pem(cert), 0o644)
    _fsync_dir(base)
    return Issued(cert.serial_number, cert.not_valid_after_utc, ca_cert.subject.rfc4514_string())


#: The files of a client certificate issued under a directory's CA.
CLIENT_CERT_FILE, CLIENT_KEY_FILE = "client.crt", "client.key"


def issue_client(
    directory: str | os.PathLike[str],
    *,
    common_name: str,
    days: int = SERVING_DAYS,
    key_type: KeyType = "ecdsa",
    now: dt.datetime | None = None,
) -> Issued:
    """A client certificate (``clientAuth``) named ``common_name``, signed by the directory's CA.

    What kube-scheduler presents to a TLS extender that requires client
    certificates: the extender trusts the CA (``--tls-client-ca``) and admits
    the name (``--tls-client-name system:kube-scheduler``).
    """
    base = Path(directory)
    ca_cert, ca_key = _load_ca(base, CA_CERT_FILE, CA_KEY_FILE)
    issued = _now(now)
    not_after = min(issued + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    key = new_private_key(key_type)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(base / CLIENT_KEY_FILE, private_key_pem(key), 0o600)
    write_atomic(base / CLIENT_CERT_FILE, _pem(cert), 0o644)
    _fsync_dir(base)
    return Issued(cert.serial_number, cert.not_valid_after_utc, ca_cert.subject.rfc4514_string())


def begin_ca_rotation(directory: str | os.PathLike[str], *, days: int = CA_DAYS, key_type: KeyType = "ecdsa",
                      now: dt.datetime | None = None) -> x509.Certificate:
    """Step 1: a new CA beside the old one, and a bundle that carries both."""
    base = Path(directory)
    old, _ = _load_ca(base, CA_CERT_FILE, CA_KEY_FILE)
    if (base / NEXT_CA_CERT).exists() or (base / PREVIOUS_CA_CERT).exists():
        raise AuthorityError(f"{base}: a CA rotation is already under way; "
                             "go on with 'meshfit certs rotate-ca switch' or 'finish'")
    name = old.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common_name = str(name[0].value) if name else "meshfit webhook CA"
    stamp = _now(now).strftime("%Y%m%d")
    cert, key = _new_ca(f"{common_name.split(' @')[0]} @{stamp}", days, key_type, now)
    _write_ca(base, NEXT_CA_CERT, NEXT_CA_KEY, cert, key)
    _write_bundle(base, [old, cert])
    _fsync_dir(base)
    return cert


def switch_ca(directory: str | os.PathLike[str], **issue_args: object) -> Issued:
    """Step 2: the new CA becomes ``ca.crt`` and issues the serving pair; the bundle keeps both."""
    base = Path(directory)
    if not (base / NEXT_CA_CERT).exists():
        raise AuthorityError(f"{base}: no CA rotation under way; begin with 'meshfit certs rotate-ca begin'")
    old_cert, _ = _load_ca(base, CA_CERT_FILE, CA_KEY_FILE)
    new_cert, new_key = _load_ca(base, NEXT_CA_CERT, NEXT_CA_KEY)
    write_atomic(base / PREVIOUS_CA_CERT, _pem(old_cert), 0o644)
    _write_ca(base, CA_CERT_FILE, CA_KEY_FILE, new_cert, new_key)
    _write_bundle(base, [old_cert, new_cert])
    (base / NEXT_CA_CERT).unlink()
    (base / NEXT_CA_KEY).unlink()
    return issue(base, **issue_args)  # type: ignore[arg-type]


def finish_ca_rotation(directory: str | os.PathLike[str]) -> x509.Certificate:
    """Step 3: the bundle carries the new CA only; the old CA's certificate is removed (its key already is)."""
    base = Path(directory)
    if (base / NEXT_CA_CERT).exists():
        raise AuthorityError(f"{base}: the serving pair is still under the old CA; run 'meshfit certs rotate-ca switch'")
    if not (base / PREVIOUS_CA_CERT).exists():
        raise AuthorityError(f"{base}: no CA rotation to finish")
    cert, _ = _load_ca(base, CA_CERT_FILE, CA_KEY_FILE)
    _write_bundle(base, [cert])
    (base / PREVIOUS_CA_CERT).unlink()
    _fsync_dir(base)
    return cert


def bundle_pem(directory: str | os.PathLike[str]) -> bytes:
    """What the caBundle carries: ``ca-bundle.crt``, else ``ca.crt`` (a directory from ``certs generate``)."""
    base = Path(directory)
    path = base / BUNDLE_FILE
    return (path if path.exists() else base / CA_CERT_FILE).read_bytes()
