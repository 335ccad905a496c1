"""The webhook over real HTTPS on loopback: answers, errors, probes, metrics, live reloads."""

from __future__ import annotations

import asyncio
import copy
import ssl
from pathlib import Path

import aiohttp
import jsonpatch
import orjson
import pytest
from webhook_server_helpers import NAMESPACE, SERVICE, Served, StartServer, client_context
from cryptography import x509
from webhook_samples import configmap, container, giant_pod, pod, pod_shapes, review

from certs.generate import generate
from policy.inject import Namespace, inject
from policy.load import load_policy_file
from serving.exposition import parse_text
from webhook.review import decode_patch

SHAPES = pod_shapes()
BAD_POD = pod("broken", [container("app", "lots", "1Gi")])


def expected_pod(original: dict, policy_path: Path) -> dict:
    """What ``meshfit inject`` gives for the pod in its namespace (no cluster: opted in)."""
    namespace = original["metadata"].get("namespace", "default")
    return inject(copy.deepcopy(original), Namespace(namespace, None, None), load_policy_file(policy_path)).pod


async def wait_for(condition, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def metrics(server: Served) -> dict[str, float]:
    status, text = await server.get("/metrics")
    assert status == 200
    return parse_text(text)


# -- TLS ---------------------------------------------------------------------
async def test_tls_is_verified_against_the_generated_ca(server: Served, tmp_path: Path) -> None:
    status, _ = await server.get("/healthz")
    assert status == 200
    other = generate(tmp_path / "other", service=SERVICE, namespace=NAMESPACE, ips=["127.0.0.1"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(other.ca_cert_path))) as s:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await s.get(server.url + "/healthz")


def _legacy_client(ca: Path) -> ssl.SSLContext:
    """A client that really offers TLS 1.0/1.1: OpenSSL 3 refuses them below security level 0."""
    context = client_context(ca)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_below_1_2_is_refused_by_the_server(server: Served, cert_dir: Path) -> None:
    # The control: the same client completes a TLS 1.1 handshake with a server that allows it,
    # so a refusal below comes from the webhook, not from the client declining to send.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    permissive.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
    try:
        port = control.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_legacy_client(cert_dir / "ca.crt"),
                                                  server_hostname="127.0.0.1")
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1", "TLSv1.1")
        writer.close()
    finally:
        control.close()
    # The webhook answers with a protocol_version alert or drops the connection (asyncio may
    # close before the alert is flushed); either way no TLS 1.1 session is established.
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
        await asyncio.open_connection("127.0.0.1", server.running.port, ssl=_legacy_client(cert_dir / "ca.crt"))
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)


# -- reviews ------------------------------------------------------------------
@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
async def test_every_pod_shape_gets_the_patch_that_gives_inject_output(
    server: Served, policy_path: Path, api_version: str
) -> None:
    docs = {name: review(shape, api_version=api_version) for name, shape in SHAPES.items()}
    answers = await asyncio.gather(*(server.post(doc) for doc in docs.values()))
    injected = 0
    for (name, doc), (status, body) in zip(docs.items(), answers):
        assert status == 200, name
        assert body["apiVersion"] == api_version and body["kind"] == "AdmissionReview"
        response = body["response"]
        assert response["uid"] == doc["request"]["uid"]
        assert response["allowed"] is True
        original = SHAPES[name]
        patch = decode_patch(response)
        result = jsonpatch.apply_patch(original, patch) if patch else original
        assert result == expected_pod(original, policy_path), name
        injected += bool(patch)
    assert injected >= len(SHAPES) - 5


async def test_dry_run_is_answered_the_same(server: Served) -> None:
    _, wet = await server.post(review(SHAPES["two-containers"], uid="u"))
    _, dry = await server.post(review(SHAPES["two-containers"], uid="u", dry_run=True))
    assert decode_patch(dry["response"]) == decode_patch(wet["response"])


@pytest.mark.parametrize(
    "doc",
    [
        review(configmap(), kind=("", "v1", "ConfigMap"), resource="configmaps"),
        review(SHAPES["burstable"], sub_resource="ephemeralcontainers", operation="UPDATE"),
        review(SHAPES["burstable"], sub_resource="binding"),
        review(SHAPES["burstable"], operation="UPDATE"),
        review(None, operation="DELETE", namespace="shop"),
        review({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}},
               kind=("apps", "v1", "Deployment"), resource="deployments"),
    ],
    ids=["configmap", "ephemeral", "binding", "update", "delete", "deployment"],
)
async def test_non_pod_creates_pass_unchanged(server: Served, doc: dict) -> None:
    status, body = await server.post(doc)
    assert status == 200
    assert body["response"] == {"uid": doc["request"]["uid"], "allowed": True}


async def test_skips_users_should_see_carry_warnings(server: Served) -> None:
    status, body = await server.post(review(SHAPES["host-network"]))
    assert status == 200
    assert "patch" not in body["response"]
    assert any("host network" in w for w in body["response"]["warnings"])


async def test_giant_pod(server: Served, policy_path: Path) -> None:
    original = giant_pod(3000)
    status, body = await server.post(review(original))
    assert status == 200
    assert jsonpatch.apply_patch(original, decode_patch(body["response"])) == expected_pod(original, policy_path)


# -- the client's mistakes ----------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request is required"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "x"}}', "request.kind"),
        (orjson.dumps({**review(pod("x", [container("app")])), "request": {"uid": "", "kind": {"kind": "Pod"}}}),
         "request.uid"),
        (b"[1, 2, 3]", "JSON object"),
        (b'"just a string"', "JSON object"),
        (b"{" * 100_000, "not JSON"),
    ],
)
async def test_unparsable_or_schema_invalid_is_400_with_a_message(server: Served, body: bytes, needle: str) -> None:
    status, text = await server.post(body)
    assert status == 400
    assert needle in text


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", "application/x-www-form-urlencoded", None])
async def test_wrong_content_type_is_415(server: Served, content_type: str | None) -> None:
    status, text = await server.post(review(SHAPES["burstable"]), content_type=content_type)
    assert status == 415
    assert "application/json" in text


async def test_json_with_charset_is_accepted(server: Served) -> None:
    status, _ = await server.post(review(SHAPES["burstable"]), content_type="application/json; charset=utf-8")
    assert status == 200


async def test_oversize_body_is_413_by_length_and_by_stream(start_server: StartServer) -> None:
    server = await start_server(max_body_bytes=64 * 1024)
    big = review(giant_pod(3000))
    status, text = await server.post(big)
    assert status == 413
    assert str(64 * 1024) in text

    async def chunks():  # no Content-Length: the limit must hold while streaming
        data = orjson.dumps(big)
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    async with server.session.post(
        server.url + "/mutate", data=chunks(), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 413
    status, _ = await server.post(review(SHAPES["burstable"]))
    assert status == 200, "a body under the limit still passes"
    samples = await metrics(server)
    assert samples['meshfit_webhook_requests_total{result="too_large"}'] == 2


async def test_other_methods_and_paths(server: Served) -> None:
    status, _ = await server.get("/mutate")
    assert status == 405
    status, _ = await server.get("/nope")
    assert status == 404


async def test_bad_requests_never_hurt_the_next_one(server: Served) -> None:
    for body in (b"{", b"[]", b"\x00" * 1000, orjson.dumps({"apiVersion": 1}),
                 orjson.dumps({"apiVersion": ["admission.k8s.io/v1"], "kind": "AdmissionReview"}),
                 orjson.dumps({"apiVersion": {"a": 1}, "kind": "AdmissionReview"}),
                 orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": ["AdmissionReview"]})):
        status, _ = await server.post(body)
        assert status == 400
    status, body = await server.post(review(SHAPES["burstable"]))
    assert status == 200 and "patch" in body["response"]


# -- engine failures -------------------------------------------------------------
async def test_engine_failure_fails_open_with_a_warning_and_a_log(server: Served, caplog: pytest.LogCaptureFixture) -> None:
    status, body = await server.post(review(BAD_POD))
    assert status == 200
    response = body["response"]
    assert response["allowed"] is True and "patch" not in response
    assert "requests.cpu" in response["warnings"][0]
    assert any("shop/broken" in r.getMessage() and "requests.cpu" in r.getMessage() for r in caplog.records)
    samples = await metrics(server)
    assert samples['meshfit_webhook_requests_total{result="admitted_on_error"}'] == 1
    assert samples['meshfit_webhook_errors_total{kind="engine"}'] == 1


async def test_engine_failure_fails_closed_when_the_policy_says(start_server: StartServer, policy_path: Path) -> None:
    policy_path.write_text(policy_path.read_text().replace("failClosed: false", "failClosed: true"))
    server = await start_server()
    status, body = await server.post(review(BAD_POD))
    assert status == 200
    response = body["response"]
    assert response["allowed"] is False
    assert "requests.cpu" in response["status"]["message"]
    assert response["status"]["code"] == 403


# -- probes and metrics ------------------------------------------------------------
async def test_probes(server: Served) -> None:
    assert await server.get("/healthz") == (200, "ok\n")
    status, text = await server.get("/readyz")
    assert status == 200
    assert "[+] policy: revision" in text and "[+] certificate: valid" in text and text.endswith("ready\n")


async def test_metrics_cover_what_the_issue_lists(server: Served) -> None:
    await server.post(review(SHAPES["burstable"]))
    await server.post(review(SHAPES["opt-out-annotation"]))
    await server.post(review(configmap(), kind=("", "v1", "ConfigMap"), resource="configmaps"))
    await server.post(b"{")
    samples = await metrics(server)
    revision = server.webhook.live.revision
    assert samples['meshfit_webhook_requests_total{result="injected"}'] == 1
    assert samples['meshfit_webhook_requests_total{result="skipped"}'] == 1
    assert samples['meshfit_webhook_requests_total{result="passed"}'] == 1
    assert samples['meshfit_webhook_requests_total{result="bad_request"}'] == 1
    assert samples['meshfit_webhook_injections_total{sidecar="rpc-mesh",version="1.8.0",mode="overcommit"}'] == 1
    assert samples['meshfit_webhook_skips_total{reason="pod_opt_out"}'] == 1
    assert samples['meshfit_webhook_errors_total{kind="client"}'] == 1
    assert samples["meshfit_webhook_request_duration_seconds_count"] == 3
    assert samples[f'meshfit_webhook_policy_info{{revision="{revision}"}}'] == 1
    assert samples['meshfit_webhook_policy_reloads_total{result="success"}'] == 1
    assert samples["meshfit_webhook_policy_last_update_invalid"] == 0
    assert 364 * 86400 < samples["meshfit_webhook_certificate_expiry_seconds"] <= 365 * 86400


# -- live reloads ------------------------------------------------------------------
async def test_rotated_certificate_is_served_without_restart(server: Served, cert_dir: Path) -> None:
    old_serial = server.running.certs.serial
    rotated = generate(cert_dir, service=SERVICE, namespace=NAMESPACE, ips=["127.0.0.1"])
    assert rotated.serial != old_serial
    new_context = client_context(rotated.ca_cert_path)

    async def served_serial() -> int | None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", server.running.port, ssl=new_context)
        except ssl.SSLError:
            return None  # still the old certificate, which the new CA does not sign
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).serial_number

    async def rotated_in() -> bool:
        return await served_serial() == rotated.serial

    await wait_for(rotated_in)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=new_context)) as session:
        async with session.post(
            server.url + "/mutate", data=orjson.dumps(review(SHAPES["burstable"])),
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 200
    assert server.running.certs.reloads == 1


async def test_policy_change_is_followed_by_the_next_review(server: Served, policy_path: Path) -> None:
    doc = review(SHAPES["burstable"])
    _, before = await server.post(doc)
    assert "patch" in before["response"]

    policy_path.write_text(policy_path.read_text().replace("stopInjection: false", "stopInjection: true"))

    async def stopped() -> bool:
        _, body = await server.post(review(SHAPES["burstable"]))
        return "patch" not in body["response"]

    await wait_for(stopped)
    _, after = await server.post(review(SHAPES["burstable"]))
    assert any("emergency" in w for w in after["response"]["warnings"])


async def test_invalid_policy_update_keeps_serving_and_says_so(server: Served, policy_path: Path) -> None:
    revision = server.webhook.live.revision
    policy_path.write_text(policy_path.read_text().replace("mode: overcommit", "mode: sideways"))

    async def refused() -> bool:
        return server.webhook.live.rejected is not None

    await wait_for(refused)
    status, text = await server.get("/readyz")
    assert status == 200, "the last good policy still serves: stay ready"
    assert "[!] policy: last update refused" in text and "resources.mode" in text
    samples = await metrics(server)
    assert samples["meshfit_webhook_policy_last_update_invalid"] == 1
    assert samples['meshfit_webhook_policy_reloads_total{result="invalid"}'] == 1
    assert samples[f'meshfit_webhook_policy_info{{revision="{revision}"}}'] == 1
    status, body = await server.post(review(SHAPES["burstable"]))
    assert status == 200 and "patch" in body["response"]


async def test_readyz_fails_while_the_certificate_is_not_valid(server: Served) -> None:
    server.running.certs.not_after = server.running.certs.not_before  # as if it had expired
    status, text = await server.get("/readyz")
    assert status == 503
    assert "[-] certificate" in text


async def test_a_refused_rotation_keeps_serving_ready_and_says_so(server: Served, cert_dir: Path) -> None:
    import datetime as dt

    certs = server.running.certs
    serial = certs.serial
    generate(cert_dir, service=SERVICE, namespace=NAMESPACE, ips=["127.0.0.1"], days=1,
             now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    assert certs.check_now() is False
    status, text = await server.get("/readyz")
    assert status == 200, "the pair in force is good: still ready"
    assert f"[!] certificate: rotated pair refused, still serving serial {serial:x}: certificate expired" in text
    samples = await metrics(server)
    assert samples["meshfit_webhook_certificate_rotation_refused"] == 1
    assert samples['meshfit_webhook_certificate_reloads_total{result="invalid"}'] == 1
    assert certs.not_after is not None
    assert samples["meshfit_webhook_certificate_not_after_timestamp_seconds"] == certs.not_after.timestamp()
    assert certs.serial == serial


async def test_start_errors(start_server: StartServer, tmp_path: Path, policy_path: Path) -> None:
    from serving.process import StartError

    with pytest.raises(StartError, match="no serving certificate"):
        await start_server(cert_dir=tmp_path / "missing")
    policy_path.write_text("kind: [")
    with pytest.raises(StartError, match="YAML"):
        await start_server()
