"""charts/meshfit offline: lint, the three certificate modes, the schema, and agreement with manifests/."""

from __future__ import annotations

import argparse
import base64
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_support import (
    CHART,
    NAMESPACE,
    REPO,
    by_key,
    ca_bundle,
    helm_template,
    meaningful,
    render_chart,
    render_kustomize,
)
from cryptography import x509

from certs.generate import generate
from cli.main import build_parser

#: The value sets the tests render: every optional part, once.
EVERYTHING = ["--set", "scheduler.mode=secondScheduler", "--set", "networkPolicy.webhook.enabled=true",
              "--set", "networkPolicy.webhook.from[0].ipBlock.cidr=10.0.0.0/16",
              "--set", "networkPolicy.extender.from[0].ipBlock.cidr=10.0.0.0/24", "--set", "serviceMonitor.enabled=true",
              "--set", "extender.pdb.enabled=true", "--set", "scheduler.snippetConfigMap=true",
              "--set", "extender.tls.mode=generate"]


@pytest.fixture(scope="module")
def user_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("user-certs")
    generate(out, service="meshfit-webhook", namespace=NAMESPACE)
    return out


def user_cert_args(certs: Path) -> list[str]:
    return ["--set", "certificates.mode=secret", "--set-file", f"certificates.secret.caCrt={certs / 'ca.crt'}",
            "--set-file", f"certificates.secret.tlsCrt={certs / 'tls.crt'}",
            "--set-file", f"certificates.secret.tlsKey={certs / 'tls.key'}"]


def test_the_chart_carries_the_crds_manifests_holds() -> None:
    """Helm installs charts/meshfit/crds/ verbatim (and never templates or upgrades them): the same files, byte for byte."""
    shipped = sorted(p.name for p in (REPO / "manifests/crds").glob("*.yaml"))
    charted = sorted(p.name for p in (REPO / "charts/meshfit/crds").glob("*.yaml"))
    assert shipped == charted == ["sidecarrollouts.yaml"]
    for name in shipped:
        assert (REPO / "charts/meshfit/crds" / name).read_bytes() == (REPO / "manifests/crds" / name).read_bytes(), name


def test_values_policy_is_manifests_policy() -> None:
    done = subprocess.run([sys.executable, str(REPO / "hack/chart/sync-policy.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("values", [[], ["--set", "certificates.mode=certManager", "--set", "extender.tls.mode=certManager"],
                                    EVERYTHING],
                         ids=["defaults", "cert-manager", "everything"])
def test_lint(helm: Path, values: list[str]) -> None:
    done = subprocess.run([str(helm), "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_generated_certificates(helm: Path) -> None:
    docs = render_chart(helm)
    objects = by_key(docs)
    secret = objects["Secret", NAMESPACE, "meshfit-webhook-tls"]
    assert secret["type"] == "kubernetes.io/tls"
    ca = x509.load_pem_x509_certificate(ca_bundle(docs))
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca_bundle(docs)
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"meshfit-webhook.{NAMESPACE}.svc" in names and "meshfit-webhook" in names
    deployment = objects["Deployment", NAMESPACE, "meshfit-webhook"]
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "meshfit-webhook-tls"


def test_user_supplied_certificates(helm: Path, user_certs: Path) -> None:
    docs = render_chart(helm, *user_cert_args(user_certs))
    assert ca_bundle(docs) == (user_certs / "ca.crt").read_bytes()
    secret = by_key(docs)["Secret", NAMESPACE, "meshfit-webhook-tls"]
    assert base64.b64decode(secret["data"]["tls.key"]) == (user_certs / "tls.key").read_bytes()
    # An existing Secret: only its name and the caBundle.
    bundle = base64.b64encode((user_certs / "ca.crt").read_bytes()).decode()
    docs = render_chart(helm, "--set", "certificates.mode=secret", "--set", "certificates.secret.name=my-tls",
                        "--set", f"certificates.secret.caBundle={bundle}")
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert ca_bundle(docs) == (user_certs / "ca.crt").read_bytes()
    (volume,) = [v for v in by_key(docs)["Deployment", NAMESPACE, "meshfit-webhook"]["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == "my-tls"


def test_user_supplied_certificates_need_a_ca(helm: Path) -> None:
    done = helm_template(helm, "--set", "certificates.mode=secret", check=False)
    assert done.returncode != 0
    assert "certificates.secret.caBundle" in done.stderr


def test_cert_manager_certificates(helm: Path) -> None:
    docs = render_chart(helm, "--set", "certificates.mode=certManager")
    objects = by_key(docs)
    hook = objects["MutatingWebhookConfiguration", "", "meshfit-sidecar-injector"]
    assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/meshfit-webhook"
    assert "caBundle" not in hook["webhooks"][0]["clientConfig"]
    assert not [d for d in docs if d["kind"] == "Secret"]
    certificate = objects["Certificate", NAMESPACE, "meshfit-webhook"]
    assert certificate["spec"]["secretName"] == "meshfit-webhook-tls"
    assert certificate["spec"]["issuerRef"] == {"name": "meshfit-ca", "kind": "Issuer"}
    assert f"meshfit-webhook.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    # The same objects as manifests/webhook/cert-manager/.
    shipped = by_key([d for d in yaml.safe_load_all((REPO / "manifests/webhook/cert-manager/certificate.yaml").read_text())
                      if d])
    for key, doc in shipped.items():
        assert meaningful(objects[key])["spec"] == doc["spec"], key
    # An issuer of the user's: no private CA.
    docs = render_chart(helm, "--set", "certificates.mode=certManager",
                        "--set", "certificates.certManager.issuerRef.name=corp-ca",
                        "--set", "certificates.certManager.issuerRef.kind=ClusterIssuer")
    assert [d["metadata"]["name"] for d in docs if d["kind"] in ("Issuer", "Certificate")] == ["meshfit-webhook"]


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "certificates.mode=vault"], "certificates/mode"),
    (["--set", "webhook.failurePolicy=Sometimes"], "webhook/failurePolicy"),
    (["--set", "extender.leaderElection.enabled=false", "--set", "extender.replicas=2"], "extender/replicas"),
    (["--set", "extender.tls.mode=vault"], "extender/tls/mode"),
    (["--set", "controller.leaderElection.enabled=false"], "controller/replicas"),
    (["--set", "controller.workers=0"], "controller/workers"),
    (["--set", "controller.qps=0"], "controller/qps"),
    (["--set", "networkPolicy.controller.from[0].ipBlock.cidr=10.0.0.0/8"], "networkPolicy/controller"),
    (["--set", "networkPolicy.enabled=true"], "networkPolicy"),
    (["--set", "image.digest=latest"], "image/digest"),
    (["--set", "webhook.replicaCount=3"], "replicaCount"),
    (["--set", "policy.apiVersion=meshfit.io/v2"], "policy/apiVersion"),
])
def test_schema_rejects_wrong_values(helm: Path, values: list[str], message: str) -> None:
    done = helm_template(helm, *values, check=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_policy_configmap_is_the_shipped_policy(helm: Path, tmp_path: Path) -> None:
    """The rendered ConfigMap passes `meshfit policy validate` with the shipped policy's revision."""
    configmap = by_key(render_chart(helm))["ConfigMap", NAMESPACE, "meshfit-policy"]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(configmap))
    ours = subprocess.run([sys.executable, "-m", "cli", "policy", "validate", str(path)], capture_output=True, text=True)
    shipped = subprocess.run([sys.executable, "-m", "cli", "policy", "validate", str(REPO / "manifests/policy.yaml")],
                             capture_output=True, text=True)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    revision = lambda out: out.split("revision ", 1)[1].split(",", 1)[0]  # noqa: E731
    assert revision(ours.stdout) == revision(shipped.stdout)
    # A value merges into the default policy rather than replacing it.
    merged = by_key(render_chart(helm, "--set", "policy.emergency.stopInjection=true"))["ConfigMap", NAMESPACE,
                                                                                         "meshfit-policy"]
    policy = yaml.safe_load(merged["data"]["policy.yaml"])
    assert policy["emergency"]["stopInjection"] is True and policy["sidecars"]


def test_image_is_pinned_by_digest(helm: Path) -> None:
    digest = "sha256:" + "ab" * 32
    docs = render_chart(helm, "--set", f"image.digest={digest}", "--set", "image.repository=registry.corp/meshfit")
    images = {c["image"] for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {f"registry.corp/meshfit@{digest}"}


@pytest.mark.e2e
def test_chart_defaults_render_what_kustomize_renders(helm: Path, controlplane_bindir: Path, tmp_path: Path) -> None:
    """`kubectl kustomize manifests/` and `helm template` with the defaults: the same objects, field for field.

    Not compared: Helm's own labels, the key material (both must have it), and the
    Namespace, which `helm install --create-namespace` makes (namespace.create renders it).
    """
    kustomized = by_key(render_kustomize(controlplane_bindir / "kubectl", tmp_path))
    charted = by_key(render_chart(helm, "--include-crds"))  # `helm install` applies crds/ first
    namespace = kustomized.pop(("Namespace", "", NAMESPACE))
    assert sorted(kustomized) == sorted(charted)
    for key, doc in kustomized.items():
        assert meaningful(charted[key]) == meaningful(doc), key
    rendered_ns = by_key(render_chart(helm, "--set", "namespace.create=true"))["Namespace", "", NAMESPACE]
    assert meaningful(rendered_ns) == meaningful(namespace)


@pytest.mark.e2e
def test_second_scheduler_renders_what_the_manifest_holds(helm: Path) -> None:
    shipped = by_key([d for d in yaml.safe_load_all((REPO / "manifests/extender/second-scheduler.yaml").read_text())
                      if d])
    charted = by_key(render_chart(helm, "--set", "scheduler.mode=secondScheduler"))
    for key, doc in shipped.items():
        ours = meaningful(charted[key])
        if key[0] == "Deployment":
            ours["spec"]["template"]["metadata"]["annotations"].pop("checksum/config")
        if key[0] == "ConfigMap":
            assert yaml.safe_load(ours["data"]["config.yaml"]) == yaml.safe_load(doc["data"]["config.yaml"]), key
            continue
        assert ours == meaningful(doc), key


def _secret_files(secret: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, value in secret["data"].items():
        files[key] = out / key
        files[key].write_bytes(base64.b64decode(value))
    return files


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_name: str) -> dict:
    """A TLS handshake in memory; the server's view of the client's certificate."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=server_name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for side, obj in (("c", c), ("s", s)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    return s.getpeercert()


def _extender(docs: list[dict]) -> dict:
    return by_key(docs)["Deployment", NAMESPACE, "meshfit-extender"]["spec"]["template"]["spec"]


def _volume_secret(spec: dict, name: str) -> dict:
    (volume,) = [v for v in spec["volumes"] if v["name"] == name]
    return volume["secret"]


def test_extender_generated_certificates_let_the_scheduler_in(helm: Path, tmp_path: Path) -> None:
    """extender.tls.mode=generate: the scheduler's certificate passes the extender's TLS and name checks."""
    from extender.handlers import client_names

    docs = render_chart(helm, "--set", "extender.tls.mode=generate")
    objects = by_key(docs)
    serving = _secret_files(objects["Secret", NAMESPACE, "meshfit-extender-tls"], tmp_path / "serving")
    client_ca = _secret_files(objects["Secret", NAMESPACE, "meshfit-scheduler-client-ca"], tmp_path / "client-ca")
    scheduler = _secret_files(objects["Secret", NAMESPACE, "meshfit-scheduler-client"], tmp_path / "scheduler")
    assert serving["ca.crt"].read_bytes() == scheduler["ca.crt"].read_bytes()
    assert client_ca["ca.crt"].read_bytes() != serving["ca.crt"].read_bytes()  # two CAs: no cross-use
    # The extender's side, as `meshfit extender serve --cert-dir --tls-client-ca` makes it.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(serving["tls.crt"], serving["tls.key"])
    server.load_verify_locations(cafile=client_ca["ca.crt"])
    server.verify_mode = ssl.CERT_REQUIRED
    # The scheduler's side: the three files of its tlsConfig.
    client = ssl.create_default_context(cafile=str(scheduler["ca.crt"]))
    client.load_cert_chain(scheduler["tls.crt"], scheduler["tls.key"])
    peer = _handshake(server, client, f"meshfit-extender.{NAMESPACE}.svc")
    spec = _extender(docs)
    (arg,) = [a for a in spec["containers"][0]["args"] if a.startswith("--tls-client-name=")]
    assert arg.split("=", 1)[1] in client_names(peer) == {"system:kube-scheduler"}
    # The extender's own serving certificate is no client certificate it accepts.
    own = ssl.create_default_context(cafile=str(scheduler["ca.crt"]))
    own.load_cert_chain(serving["tls.crt"], serving["tls.key"])
    with pytest.raises(ssl.SSLError):
        _handshake(server, own, f"meshfit-extender.{NAMESPACE}.svc")
    assert _volume_secret(spec, "extender-tls") == {"secretName": "meshfit-extender-tls"}
    assert _volume_secret(spec, "scheduler-client-ca") == {"secretName": "meshfit-scheduler-client-ca"}
    # Another client name: the flag and the certificate follow.
    docs = render_chart(helm, "--set", "extender.tls.mode=generate", "--set", "extender.tls.clientName=meshfit-sched")
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(by_key(docs)["Secret", NAMESPACE, "meshfit-scheduler-client"]["data"]["tls.crt"]))
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "meshfit-sched"
    assert "--tls-client-name=meshfit-sched" in _extender(docs)["containers"][0]["args"]


def test_extender_user_supplied_certificates(helm: Path, user_certs: Path) -> None:
    """extender.tls.mode=secret (the default): Secrets of the user's, by name, or made from the PEMs given."""
    docs = render_chart(helm, "--set", "extender.tls.secretName=corp-extender",
                        "--set", "extender.tls.clientCASecretName=corp-client-ca", "--set", "extender.tls.clientName=")
    assert not [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] != "meshfit-webhook-tls"]
    spec = _extender(docs)
    assert _volume_secret(spec, "extender-tls") == {"secretName": "corp-extender"}
    assert _volume_secret(spec, "scheduler-client-ca") == {"secretName": "corp-client-ca"}
    assert not [a for a in spec["containers"][0]["args"] if a.startswith("--tls-client-name")]
    docs = render_chart(helm, "--set-file", f"extender.tls.secret.tlsCrt={user_certs / 'tls.crt'}",
                        "--set-file", f"extender.tls.secret.tlsKey={user_certs / 'tls.key'}",
                        "--set-file", f"extender.tls.secret.clientCaCrt={user_certs / 'ca.crt'}")
    objects = by_key(docs)
    assert base64.b64decode(objects["Secret", NAMESPACE, "meshfit-extender-tls"]["data"]["tls.key"]) == \
        (user_certs / "tls.key").read_bytes()
    assert base64.b64decode(objects["Secret", NAMESPACE, "meshfit-scheduler-client-ca"]["data"]["ca.crt"]) == \
        (user_certs / "ca.crt").read_bytes()
    done = helm_template(helm, "--set-file", f"extender.tls.secret.tlsCrt={user_certs / 'tls.crt'}", check=False)
    assert done.returncode != 0 and "extender.tls.secret.tlsKey" in done.stderr


def test_extender_cert_manager_certificates(helm: Path) -> None:
    docs = render_chart(helm, "--set", "extender.tls.mode=certManager")
    objects = by_key(docs)
    serving = objects["Certificate", NAMESPACE, "meshfit-extender"]["spec"]
    client = objects["Certificate", NAMESPACE, "meshfit-scheduler-client"]["spec"]
    assert serving["secretName"] == "meshfit-extender-tls" and f"meshfit-extender.{NAMESPACE}.svc" in serving["dnsNames"]
    assert client["commonName"] == "system:kube-scheduler" and "client auth" in client["usages"]
    assert serving["issuerRef"] == client["issuerRef"] == {"name": "meshfit-extender-ca", "kind": "Issuer"}
    assert objects["Certificate", NAMESPACE, "meshfit-extender-ca"]["spec"]["isCA"] is True
    assert ("Issuer", NAMESPACE, "meshfit-selfsigned") in objects
    # The extender trusts the client certificate's CA, and mounts nothing else of that Secret.
    assert _volume_secret(_extender(docs), "scheduler-client-ca") == {
        "secretName": "meshfit-scheduler-client", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    # Both private CAs share the one self-signed Issuer; the webhook's Certificate stays whole.
    docs = render_chart(helm, "--set", "extender.tls.mode=certManager", "--set", "certificates.mode=certManager")
    objects = by_key(docs)
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Issuer"].count("meshfit-selfsigned") == 1
    assert objects["Certificate", NAMESPACE, "meshfit-webhook"]["spec"]["issuerRef"] == {"name": "meshfit-ca",
                                                                                       "kind": "Issuer"}
    docs = render_chart(helm, "--set", "extender.tls.mode=certManager",
                        "--set", "extender.tls.certManager.issuerRef.name=corp-ca",
                        "--set", "extender.tls.certManager.issuerRef.kind=ClusterIssuer")
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] in ("Issuer", "Certificate")) == [
        "meshfit-extender", "meshfit-scheduler-client"]


def test_extender_leader_election(helm: Path) -> None:
    docs = render_chart(helm, "--set", "extender.leaderElection.leaseName=corp-lease",
                        "--set", "extender.leaderElection.leaseDuration=30", "--set", "extender.replicas=3",
                        "--set", "extender.schedulerNames={default-scheduler,corp-scheduler}")
    objects = by_key(docs)
    args = _extender(docs)["containers"][0]["args"]
    assert {"--leader-elect", "--leader-elect-resource-name=corp-lease", "--leader-elect-lease-duration=30",
            f"--leader-elect-resource-namespace={NAMESPACE}", "--scheduler-name=default-scheduler",
            "--scheduler-name=corp-scheduler"} <= set(args)
    assert objects["Deployment", NAMESPACE, "meshfit-extender"]["spec"]["replicas"] == 3
    (named,) = [r for r in objects["Role", NAMESPACE, "meshfit-extender-leader-election"]["rules"] if "resourceNames" in r]
    assert named["resourceNames"] == ["corp-lease"]
    # Without: one replica, no Lease, no rights to one.
    docs = render_chart(helm, "--set", "extender.leaderElection.enabled=false", "--set", "extender.replicas=1")
    assert not [a for a in _extender(docs)["containers"][0]["args"] if a.startswith("--leader-elect")]
    assert not [k for k in by_key(docs) if k[2] == "meshfit-extender-leader-election"]
    done = helm_template(helm, "--set", "extender.leaderElection.renewDeadline=20", check=False)
    assert done.returncode != 0 and "leaseDuration must be longer than renewDeadline" in done.stderr


def _controller(docs: list[dict], namespace: str = NAMESPACE) -> dict:
    return by_key(docs)["Deployment", namespace, "meshfit-controller"]


def _controller_args(docs: list[dict], namespace: str = NAMESPACE) -> argparse.Namespace:
    (container,) = _controller(docs, namespace)["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["meshfit"]
    return build_parser().parse_args(container["args"])


def _rules(role: dict) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return sorted((g, r, tuple(rule.get("resourceNames") or ()), tuple(sorted(rule["verbs"])))
                  for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"])


def test_controller_defaults(helm: Path) -> None:
    """Two replicas, one leading; hardened; probes on 8080; the RBAC of manifests/controller/rbac.yaml, rule for rule."""
    docs = render_chart(helm)
    objects = by_key(docs)
    deployment = _controller(docs)
    assert deployment["spec"]["replicas"] == 2
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "meshfit-controller"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    (container,) = spec["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert "cpu" in container["resources"]["limits"] and "memory" in container["resources"]["limits"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    args = _controller_args(docs)
    assert (args.command, args.controller_command, args.probe_port) == ("controller", "serve", 8080)
    assert args.policy_configmap == (NAMESPACE, "meshfit-policy")
    assert args.leader_elect and args.leader_elect_resource_name == "meshfit-controller"
    assert objects["PodDisruptionBudget", NAMESPACE, "meshfit-controller"]["spec"]["maxUnavailable"] == 1
    shipped = by_key([d for d in yaml.safe_load_all((REPO / "manifests/controller/rbac.yaml").read_text()) if d])
    for kind, name in [("ClusterRole", "meshfit-controller"), ("Role", "meshfit-controller-policy"),
                       ("Role", "meshfit-controller-leader-election")]:
        ns = "" if kind == "ClusterRole" else NAMESPACE
        assert _rules(objects[kind, ns, name]) == _rules(shipped[kind, ns, name]), name
    assert _rules(objects["ClusterRole", "", "meshfit-controller"]) == [
        ("", "configmaps", (), ("create", "delete", "list", "update", "watch")),
        ("", "events", (), ("create", "patch")), ("", "namespaces", (), ("list",)), ("", "nodes", (), ("get", "list", "watch")),
        ("", "pods", (), ("get", "list", "patch", "update", "watch")), ("", "pods/eviction", (), ("create",)),
        ("", "pods/resize", (), ("patch",)), ("apps", "daemonsets", (), ("get", "patch")),
        ("apps", "deployments", (), ("get", "patch")), ("apps", "replicasets", (), ("get",)),
        ("apps", "statefulsets", (), ("get", "patch")),
        ("meshfit.io", "sidecarrollouts", (), ("list", "watch")), ("meshfit.io", "sidecarrollouts/status", (), ("update",))]
    (rule,) = objects["NetworkPolicy", NAMESPACE, "meshfit-controller"]["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_controller_values(helm: Path) -> None:
    docs = render_chart(helm, "--set", "controller.replicas=3", "--set", "controller.workers=8",
                        "--set", "controller.qps=50", "--set", "controller.burst=100",
                        "--set", "controller.leaderElection.leaseName=corp-controller",
                        "--set", "controller.leaderElection.leaseDuration=30",
                        "--set", "controller.extraArgs={--log-level=debug}", namespace="fleet")
    args = _controller_args(docs, "fleet")
    assert _controller(docs, "fleet")["spec"]["replicas"] == 3
    assert (args.workers, args.qps, args.burst, args.log_level) == (8, 50.0, 100, "debug")
    assert (args.leader_elect_resource_namespace, args.leader_elect_resource_name) == ("fleet", "corp-controller")
    assert args.leader_elect_lease_duration == 30 and args.policy_configmap == ("fleet", "meshfit-policy")
    (named,) = [r for r in by_key(docs)["Role", "fleet", "meshfit-controller-leader-election"]["rules"]
                if "resourceNames" in r]
    assert named["resourceNames"] == ["corp-controller"]
    # Without leader election: one replica, no Lease, no rights to one, no identity.
    docs = render_chart(helm, "--set", "controller.leaderElection.enabled=false", "--set", "controller.replicas=1")
    assert not _controller_args(docs).leader_elect
    assert not [k for k in by_key(docs) if k[2] == "meshfit-controller-leader-election"]
    (container,) = _controller(docs)["spec"]["template"]["spec"]["containers"]
    assert "POD_NAME" not in {e["name"] for e in container["env"]}
    done = helm_template(helm, "--set", "controller.leaderElection.renewDeadline=20", check=False)
    assert done.returncode != 0 and "controller.leaderElection: leaseDuration must be longer" in done.stderr
    # Off: nothing of the controller's, its NetworkPolicy and PodMonitor included.
    docs = render_chart(helm, "--set", "controller.enabled=false", "--set", "serviceMonitor.enabled=true")
    assert not [d for d in docs if d["metadata"]["name"].startswith("meshfit-controller")]
    # The PodMonitor scrapes every replica's probe port.
    docs = render_chart(helm, "--set", "serviceMonitor.enabled=true")
    monitor = by_key(docs)["PodMonitor", NAMESPACE, "meshfit-controller"]["spec"]
    assert monitor["podMetricsEndpoints"][0]["port"] == "probes"
    assert monitor["selector"]["matchLabels"] == _controller(docs)["spec"]["selector"]["matchLabels"]


def test_scheduler_snippet_is_the_shipped_scheduler_config(helm: Path) -> None:
    """The extenders entry the chart gives the main scheduler is manifests/extender/scheduler-config.yaml's."""
    shipped = yaml.safe_load((REPO / "manifests/extender/scheduler-config.yaml").read_text())["extenders"]
    configmap = by_key(render_chart(helm, "--set", "scheduler.snippetConfigMap=true"))["ConfigMap", NAMESPACE,
                                                                                      "meshfit-scheduler-extender"]
    assert yaml.safe_load(configmap["data"]["extenders.yaml"])["extenders"] == shipped


def test_the_prometheus_rule_carries_the_shipped_alerts(helm: Path) -> None:
    """Off by default; on, the groups of manifests/monitoring/rules.yaml (files/rules.yaml must not drift)."""
    shipped = yaml.safe_load((REPO / "manifests" / "monitoring" / "rules.yaml").read_text())
    copy = yaml.safe_load((REPO / "charts" / "meshfit" / "files" / "rules.yaml").read_text())
    assert copy == shipped, "charts/meshfit/files/rules.yaml differs from manifests/monitoring/rules.yaml: copy it"
    assert not [d for d in render_chart(helm) if d["kind"] == "PrometheusRule"]
    docs = render_chart(helm, "--set", "prometheusRule.enabled=true", "--set", "prometheusRule.labels.release=prom")
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == shipped["groups"]
    assert rule["metadata"]["namespace"] == NAMESPACE and rule["metadata"]["labels"]["release"] == "prom"
    failed = helm_template(helm, "--set", "prometheusRule.enabled=yes", check=False)
    assert failed.returncode != 0 and "prometheusRule" in failed.stderr
