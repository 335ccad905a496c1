"""certs.generate: what the apiserver will check, checked here first."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.generate import CLOCK_SKEW, generate
from certs.inspect import inspect_dir
from certs.names import dns_name_covered, ip_covered, service_dns_names

SERVICE_NAMES = [
    "meshfit-webhook",
    "meshfit-webhook.meshfit",
    "meshfit-webhook.meshfit.svc",
    "meshfit-webhook.meshfit.svc.cluster.local",
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [("ecdsa", ec.EllipticCurvePrivateKey), ("rsa", rsa.RSAPrivateKey)],
)
def test_generate_writes_a_ca_and_a_serving_pair(tmp_path: Path, key_type, key_class) -> None:
    out = tmp_path / "certs"
    result = generate(
        out,
        service="meshfit-webhook",
        namespace="meshfit",
        ips=["127.0.0.1", "::1"],
        dns_names=["localhost"],
        days=30,
        key_type=key_type,
    )

    ca = x509.load_pem_x509_certificate(result.ca_cert_path.read_bytes())
    leaf = x509.load_pem_x509_certificate(result.cert_path.read_bytes())
    key = serialization.load_pem_private_key(result.key_path.read_bytes(), password=None)

    assert isinstance(key, key_class)
    if key_type == "ecdsa":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == 2048

    # The CA: a CA, allowed to sign certificates and nothing deeper.
    ca_bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_bc.critical and ca_bc.value.ca and ca_bc.value.path_length == 0
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_ku.key_cert_sign and ca_ku.crl_sign

    # The leaf: not a CA, server auth only, every service name plus the extras.
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert ku.value.key_encipherment is (key_type == "rsa")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [*SERVICE_NAMES, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    leaf.verify_directly_issued_by(ca)

    # Validity: the requested days, started a little early for clock skew.
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=30) + CLOCK_SKEW
    assert result.not_after == leaf.not_valid_after_utc
    assert result.serial == leaf.serial_number

    # caBundle is base64 of the ca.crt PEM, on one line.
    assert base64.b64decode(result.ca_bundle) == result.ca_cert_path.read_bytes()
    assert "\n" not in result.ca_bundle

    report = inspect_dir(out, service="meshfit-webhook", namespace="meshfit", ips=["127.0.0.1"])
    assert report.problems(min_days=29) == []


def test_file_modes_and_no_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    result = generate(out, service="svc", namespace="ns")
    assert _mode(out) == 0o700
    assert _mode(result.key_path) == 0o600
    assert _mode(result.cert_path) == 0o644
    assert _mode(result.ca_cert_path) == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]


def test_existing_dir_keeps_its_mode_and_files_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    first = generate(out, service="svc", namespace="ns")
    second = generate(out, service="svc", namespace="ns")
    assert _mode(out) == 0o755
    assert first.serial != second.serial
    assert first.ca_bundle != second.ca_bundle
    assert x509.load_pem_x509_certificate(second.cert_path.read_bytes()).serial_number == second.serial
    assert _mode(second.key_path) == 0o600


def test_backdated_certificate_is_already_expired(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    result = generate(tmp_path / "old", service="svc", namespace="ns", days=1, now=now - dt.timedelta(days=3))
    assert result.not_after < now
    assert inspect_dir(tmp_path / "old").expired


def test_days_zero_expires_at_issue(tmp_path: Path) -> None:
    result = generate(tmp_path / "z", service="svc", namespace="ns", days=0)
    assert result.not_after <= dt.datetime.now(dt.UTC)


def test_extra_names_are_deduplicated_and_normalised(tmp_path: Path) -> None:
    result = generate(tmp_path / "d", service="svc", namespace="ns", dns_names=["SVC.ns.svc.", "extra.example"])
    assert result.dns_names == (*service_dns_names("svc", "ns"), "extra.example")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service": "Bad_Name", "namespace": "ns"}, "DNS-1123"),
        ({"service": "svc", "namespace": "ns.dots"}, "DNS-1123"),
        ({"service": "svc", "namespace": "ns", "ips": ["300.1.1.1"]}, "not an IP"),
        ({"service": "svc", "namespace": "ns", "key_type": "dsa"}, "unknown key type"),
        ({"service": "svc", "namespace": "ns", "days": -1}, "days"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, kwargs, message) -> None:
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=message):
        generate(out, **kwargs)
    assert not out.exists()


def test_san_matching() -> None:
    assert dns_name_covered("svc.ns.svc", ["SVC.NS.SVC"])
    assert dns_name_covered("svc.ns.svc", ["*.ns.svc"])
    assert not dns_name_covered("a.svc.ns.svc", ["*.ns.svc"])
    assert not dns_name_covered("ns.svc", ["*.ns.svc"])
    assert ip_covered("::1", ["0:0::1"])
    assert not ip_covered("127.0.0.2", ["127.0.0.1"])
