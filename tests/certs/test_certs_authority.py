"""A kept CA: serving certificates rotate under it, and a CA rotation goes in steps where every pair verifies.

At each step the test asks what the apiserver would ask: does the bundle
the configuration carries verify the pair the webhook serves?
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from certs.authority import (
    AuthorityError,
    begin_ca_rotation,
    bundle_pem,
    finish_ca_rotation,
    issue,
    make_ca,
    switch_ca,
)
from certs.inspect import chain_error, inspect_dir

REPO = Path(__file__).resolve().parents[2]
SERVING = {"service": "meshfit-webhook", "namespace": "meshfit-system", "ips": ["127.0.0.1"]}


def verified_by_bundle(directory: Path) -> bool:
    leaf = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
    return any(not chain_error(leaf, ca) for ca in x509.load_pem_x509_certificates(bundle_pem(directory)))


def test_serving_rotations_keep_the_ca_and_the_bundle(tmp_path: Path) -> None:
    make_ca(tmp_path)
    first = issue(tmp_path, **SERVING)
    bundle = bundle_pem(tmp_path)
    second = issue(tmp_path, **SERVING)
    assert second.serial != first.serial
    assert bundle_pem(tmp_path) == bundle, "a serving rotation never changes the caBundle"
    assert verified_by_bundle(tmp_path)
    assert inspect_dir(tmp_path, service="meshfit-webhook", namespace="meshfit-system").problems() == []
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(AuthorityError, match="already holds a CA"):
        make_ca(tmp_path)


def test_a_ca_rotation_in_three_steps_keeps_every_pair_verified(tmp_path: Path) -> None:
    make_ca(tmp_path)
    issue(tmp_path, **SERVING)
    old_ca = (tmp_path / "ca.crt").read_bytes()

    begin_ca_rotation(tmp_path)
    cas = x509.load_pem_x509_certificates(bundle_pem(tmp_path))
    assert len(cas) == 2 and (tmp_path / "ca.crt").read_bytes() == old_ca
    assert verified_by_bundle(tmp_path), "step 1: the old pair still verifies"
    with pytest.raises(AuthorityError, match="under way"):
        begin_ca_rotation(tmp_path)
    with pytest.raises(AuthorityError, match="still under the old CA"):
        finish_ca_rotation(tmp_path)

    switch_ca(tmp_path, **SERVING)
    assert (tmp_path / "ca.crt").read_bytes() != old_ca
    assert len(x509.load_pem_x509_certificates(bundle_pem(tmp_path))) == 2
    assert verified_by_bundle(tmp_path), "step 2: the new pair verifies with the bundle the apiserver holds"
    leaf = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert chain_error(leaf, x509.load_pem_x509_certificate(old_ca)), "issued by the new CA"

    finish_ca_rotation(tmp_path)
    (only,) = x509.load_pem_x509_certificates(bundle_pem(tmp_path))
    assert only == x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert verified_by_bundle(tmp_path)
    assert not (tmp_path / "previous-ca.crt").exists() and not (tmp_path / "next-ca.key").exists()


def test_make_manifests_keeps_the_ca_across_serving_rotations(tmp_path: Path) -> None:
    certs, out = tmp_path / "certs", tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "MESHFIT": str(REPO / ".venv" / "bin" / "meshfit")}

    def render() -> str:
        subprocess.run(["bash", str(REPO / "hack" / "render-cabundle.sh"), str(certs)], check=True,
                       capture_output=True, env=env, timeout=60)
        return (out / "cabundle-patch.yaml").read_text()

    first = render()
    serial = (certs / "tls.crt").read_bytes()
    (certs / "tls.crt").unlink()  # as if it were expiring: the next render re-issues it
    (certs / "tls.key").unlink()
    assert render() == first, "the caBundle is the same after a serving rotation"
    assert (certs / "tls.crt").read_bytes() != serial

    meshfit = env["MESHFIT"]
    subprocess.run([meshfit, "certs", "rotate-ca", "begin", "--cert-dir", str(certs)], check=True, capture_output=True)
    during = render()
    assert during != first
    subprocess.run([meshfit, "certs", "rotate-ca", "switch", "--cert-dir", str(certs), "--service", "meshfit-webhook",
                    "--namespace", "meshfit-system", "--ip", "127.0.0.1"], check=True, capture_output=True)
    assert render() == during, "switching the serving pair keeps the two-CA bundle"
    subprocess.run([meshfit, "certs", "rotate-ca", "finish", "--cert-dir", str(certs)], check=True, capture_output=True)
    assert render() not in (first, during)
