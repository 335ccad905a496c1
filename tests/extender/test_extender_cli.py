"""``meshfit extender serve|simulate`` and ``meshfit leak`` as a person (or a Deployment) runs them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml
from client_certs import client_pair
from extender_shapes import POLICY_FILE, app_pod, bound, meshed, node
from replay_apiserver import ReplayApiServer, recording

from cli.main import main
from extender.policy_source import LivePolicy
from policy.foreign_mesh import ISTIO_STATUS
from serving.policy_source import PolicyFile

MESHFIT = [sys.executable, "-m", "cli"]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    docs = [
        node("node-a", "8", "16Gi"), node("node-b", "8", "16Gi"), node("node-c", "4", "8Gi"),
        bound(meshed(app_pod("api-0", "2", "4Gi", limits={"cpu": "4", "memory": "4Gi"})), "node-a"),
        bound(meshed(app_pod("api-1", "2", "4Gi", limits={"cpu": "4", "memory": "4Gi"})), "node-c"),
        bound(app_pod("db-0", "2", "6Gi", namespace="data"), "node-b"),
        # Pending (quota charges it all the same), so it changes no node's figures.
        app_pod("mesh-0", namespace="legacy", annotations={ISTIO_STATUS: '{"containers":["istio-proxy"]}'},
                containers=[
                    {"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
                    {"name": "istio-proxy", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                ]),
    ]
    path = tmp_path / "snapshot.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


@pytest.fixture
def pending(tmp_path: Path) -> Path:
    pods = [meshed(app_pod(f"web-{i}", "1", "2Gi", limits={"cpu": "2", "memory": "4Gi"})) for i in range(4)]
    pods.append(app_pod("batch-0", "500m", "512Mi", namespace="jobs", annotations={"meshfit.io/inject": "false"}))
    path = tmp_path / "pending.yaml"
    path.write_text(yaml.safe_dump_all(pods))
    return path


# -- simulate -------------------------------------------------------------------
def test_simulate_table(snapshot: Path, pending: Path, capsys) -> None:
    code = main(["extender", "simulate", "--snapshot", str(snapshot), "-f", str(pending)])
    out = capsys.readouterr().out
    assert code == 1  # web-3 fits nowhere
    blocks = out.split("\n\n")
    assert blocks[0].startswith("pod shop/web-0 (meshfit): requests cpu 1, memory 2Gi; node-level exposure cpu 700m, memory 384Mi")
    assert "-> placed on node-b (score 5)" in blocks[0]
    assert re.search(r"node-c\s+FAIL \(exposure\)\s+-\s+.*cpu exposure would reach 47.5% of allocatable \(ceiling 25%\)", blocks[0])
    assert "-> UNSCHEDULABLE: 3 node(s) failed" in blocks[3]
    assert "pod jobs/batch-0 (no mesh)" in blocks[4] and "-> placed on" in blocks[4]


def test_simulate_json_places_each_pod_before_the_next(snapshot: Path, pending: Path, capsys) -> None:
    main(["extender", "simulate", "--snapshot", str(snapshot), "-f", str(pending), "-o", "json"])
    result = orjson.loads(capsys.readouterr().out)
    assert [r["node"] for r in result] == ["node-b", "node-a", "node-b", None, "node-a"]
    first = result[0]
    assert first["exposure"] == {"cpu": "700m", "memory": "384Mi"} and first["judgedByExtender"]
    verdicts = {v["node"]: v for v in first["nodes"]}
    assert verdicts["node-c"]["reason"] == "exposure" and verdicts["node-c"]["score"] is None
    assert verdicts["node-b"]["after"]["exposure"] == {"cpu": "8.8%", "memory": "2.3%"}
    # web-2 sees web-0 already on node-b.
    assert {v["node"]: v["after"]["exposure"]["cpu"] for v in result[2]["nodes"]}["node-b"] == "17.5%"


def test_simulate_takes_workloads_as_written_and_injects_them(capsys, monkeypatch) -> None:
    import io

    root = Path(__file__).resolve().parents[2]
    payments = root / "manifests" / "examples" / "payments.yaml"
    # The shipped snapshot is the default; a Deployment counts as its replicas, injected as the webhook would.
    assert main(["extender", "simulate", "-f", str(payments), "-o", "json"]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert [(r["namespace"], r["name"], r["mesh"]) for r in result] == \
        [("shop", f"payments-{i}", "meshfit") for i in range(3)]
    assert result[0]["requests"] == {"cpu": "2100m", "memory": "4224Mi"}  # R(pod) unchanged by the injection
    assert main(["extender", "simulate", "-f", str(payments), "--no-inject", "-o", "json"]) == 0
    assert {r["mesh"] for r in orjson.loads(capsys.readouterr().out)} == {None}
    monkeypatch.setattr("sys.stdin", io.StringIO(payments.read_text()))
    assert main(["extender", "simulate", "-f", "-", "--top", "1"]) == 0
    assert capsys.readouterr().out.startswith("pod shop/payments-0 (meshfit)")


def test_simulate_observe_only_lets_the_ceiling_pass(snapshot: Path, pending: Path, capsys) -> None:
    assert main(["extender", "simulate", "--snapshot", str(snapshot), "-f", str(pending), "--observe-only"]) == 0
    assert "UNSCHEDULABLE" not in capsys.readouterr().out


def test_simulate_says_what_is_wrong(tmp_path: Path, pending: Path, capsys) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("kind: ConfigMap\n")
    assert main(["extender", "simulate", "--snapshot", str(empty), "-f", str(pending)]) == 1
    assert "no Node objects" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [b\n")
    assert main(["extender", "simulate", "--snapshot", str(broken), "-f", str(pending)]) == 1
    assert "not valid YAML or JSON" in capsys.readouterr().err


# -- leak -----------------------------------------------------------------------
def test_leak_table_and_json(snapshot: Path, capsys) -> None:
    assert main(["leak", "-f", str(snapshot)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "PODS", "LEAKING", "PODS", "CPU", "LEAK", "MEMORY", "LEAK", "CPU", "%",
                                "OF", "REQ", "MEM", "%", "OF", "REQ"]
    assert lines[1].split() == ["legacy", "1", "1", "(istio", "1)", "100m", "128Mi", "9.1%", "11.1%"]
    assert lines[-1].split()[:3] == ["TOTAL", "4", "1"]
    assert main(["leak", "--snapshot", str(snapshot), "-o", "json", "--all"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert [n["namespace"] for n in data["namespaces"]] == ["data", "legacy", "shop"]
    assert data["total"]["leak"] == {"cpu": "100m", "memory": "128Mi"}
    assert data["total"]["leakingPods"] == {"istio": 1}


def test_leak_of_a_live_cluster_lists_pods_page_by_page(tmp_path: Path, snapshot: Path) -> None:
    pods = [d for d in yaml.safe_load_all(snapshot.read_text()) if d["kind"] == "Pod"]

    async def run() -> tuple[int, bytes, list[dict[str, str]]]:
        server = ReplayApiServer()
        await server.start()
        page = lambda items, cont: orjson.dumps({  # noqa: E731
            "kind": "PodList", "apiVersion": "v1", "items": items,
            "metadata": {"resourceVersion": "5", **({"continue": cont} if cont else {})}})
        server.on_list("/api/v1/pods", server.body(page(pods[:2], "tok")), server.body(page(pods[2:], "")))
        try:
            proc = await asyncio.create_subprocess_exec(
                *MESHFIT, "leak", "--kubeconfig", str(kubeconfig(tmp_path, server.url)), "-o", "json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env())
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err
            return proc.returncode, out, server.queries("/api/v1/pods", "list")
        finally:
            await server.stop()

    _, out, queries = asyncio.run(run())
    assert orjson.loads(out)["total"]["leakingPods"] == {"istio": 1}
    assert queries[0]["fieldSelector"] == "status.phase!=Succeeded,status.phase!=Failed"
    assert queries[1]["continue"] == "tok"


# -- serve ----------------------------------------------------------------------
def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


async def start_serve(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        *MESHFIT, "extender", "serve", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env())
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "the extender exited before listening"
        match = re.search(r"listening on https?(://127\.0\.0\.1:\d+)", line)
        if match:
            return proc, "http" + match.group(1)


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_serve_a_snapshot_and_exit_0_on_sigterm(snapshot: Path) -> None:
    proc, url = await start_serve("--snapshot", str(snapshot), "--policy", str(POLICY_FILE))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/readyz") as response:
                assert response.status == 200
            async with session.post(f"{url}/filter", data=recording("args-cache-filter.json")) as response:
                answer = await response.json()
            assert answer["NodeNames"] == ["node-b"]
    finally:
        code, err = await stop(proc)
    assert code == 0, err
    assert "stopping" in err


async def test_serve_a_cluster_is_ready_after_the_initial_lists(tmp_path: Path) -> None:
    server = ReplayApiServer()
    await server.start()
    release = asyncio.Event()
    server.on_list("/api/v1/nodes", server.body(recording("nodes-list.json")))
    # The list from before the scheduler placed web-0: Pending and unbound, so its filter counts.
    listed = orjson.loads(recording("pods-relist.json"))
    for item in listed["items"]:
        if item["metadata"]["name"] == "web-0":
            del item["spec"]["nodeName"]
    pods_list = server.body(orjson.dumps(listed))

    async def held(request):  # type: ignore[no-untyped-def]
        await release.wait()
        return await pods_list(request)

    server.on_list("/api/v1/pods", held)
    try:
        proc, url = await start_serve("--kubeconfig", str(kubeconfig(tmp_path, server.url)),
                                      "--policy", str(POLICY_FILE))
        try:
            async with aiohttp.ClientSession() as session:
                await server.wait_for(lambda: bool(server.queries("/api/v1/pods", "list")))
                async with session.get(f"{url}/readyz") as response:
                    assert response.status == 503 and "pods" in await response.text()
                release.set()
                await server.wait_for(lambda: bool(server.queries("/api/v1/pods", "watch")))
                for _ in range(100):
                    async with session.get(f"{url}/readyz") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.05)
                assert response.status == 200
                async with session.post(f"{url}/filter", data=recording("args-cache-filter.json")) as response:
                    assert "node-b" in (await response.json())["NodeNames"]
                async with session.post(f"{url}/bind", data=recording("bind.json")) as response:
                    assert (await response.json()) == {"Error": ""}
        finally:
            code, err = await stop(proc)
        assert code == 0, err
        path, body = server.posts[0]
        bind = orjson.loads(recording("bind.json"))
        assert path == f"/api/v1/namespaces/{bind['PodNamespace']}/pods/{bind['PodName']}/binding"
        assert body["target"] == {"apiVersion": "v1", "kind": "Node", "name": bind["Node"]}
        assert body["metadata"]["uid"] == bind["PodUID"]
    finally:
        await server.stop()


@pytest.mark.parametrize("args,needle", [
    (["--snapshot", "/nonexistent.yaml"], "cannot read /nonexistent.yaml"),
    (["--snapshot", "SNAP", "--policy-configmap", "ns/name"], "--policy-configmap needs a cluster"),
    (["--snapshot", "SNAP", "--policy", "BADPOLICY"], "invalid"),
    (["--snapshot", "SNAP", "--cert-dir", "/nonexistent"], "--cert-dir /nonexistent"),
])
def test_serve_refuses_bad_input_in_one_line(args: list[str], needle: str, snapshot: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad-policy.yaml"
    bad.write_text("apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nsidecars: 3\n")
    args = [a.replace("SNAP", str(snapshot)).replace("BADPOLICY", str(bad)) for a in args]
    assert main(["extender", "serve", "--port", "0", *args]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.startswith("meshfit extender serve: ") and err.count("\n") == 1


def test_policy_file_reload_keeps_the_last_good(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    text = POLICY_FILE.read_text()
    path.write_text(text)
    holder = LivePolicy()
    watch = PolicyFile(holder, path)
    assert watch.check_now()  # the first read takes the file
    assert not watch.check_now()  # unchanged since
    path.write_text(text.replace("extenderObserveOnly: false", "extenderObserveOnly: true"))
    assert watch.check_now() and holder.observe_only
    path.write_text(text.replace('weights: {cpu: 1, memory: 1}', 'weights: {cpu: 0, memory: 0}'))
    assert not watch.check_now()
    assert holder.observe_only and holder.rejections == 1
    assert "at least one resource weight must be positive" in holder.last_rejection.message


async def test_serve_https_with_client_certificates(tmp_path: Path, snapshot: Path) -> None:
    import ssl

    from certs.generate import generate

    serving = tmp_path / "tls"
    generate(serving, service="meshfit-extender", namespace="meshfit-system", ips=["127.0.0.1"])
    client_ca, client_cert, client_key = client_pair(tmp_path)
    proc, url = await start_serve("--snapshot", str(snapshot), "--cert-dir", str(serving),
                                  "--tls-client-ca", str(client_ca), "--tls-client-name", "system:kube-scheduler")
    try:
        url = url.replace("http://", "https://")
        trusted = ssl.create_default_context(cafile=str(serving / "ca.crt"))
        with_cert = ssl.create_default_context(cafile=str(serving / "ca.crt"))
        with_cert.load_cert_chain(str(client_cert), str(client_key))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/filter", data=recording("args-cache-filter.json"), ssl=with_cert) as response:
                assert response.status == 200
            with pytest.raises(aiohttp.ClientError):  # no client certificate: no handshake
                async with session.get(f"{url}/healthz", ssl=trusted) as response:
                    await response.read()
    finally:
        code, err = await stop(proc)
    assert code == 0, err


async def test_a_client_certificate_of_another_name_is_refused(tmp_path: Path, snapshot: Path) -> None:
    import ssl

    from certs.generate import generate

    serving = tmp_path / "tls"
    generate(serving, service="meshfit-extender", namespace="meshfit-system", ips=["127.0.0.1"])
    client_ca, client_cert, client_key = client_pair(tmp_path)  # CN system:kube-scheduler
    proc, url = await start_serve("--snapshot", str(snapshot), "--cert-dir", str(serving),
                                  "--tls-client-ca", str(client_ca), "--tls-client-name", "system:node:worker-1")
    try:
        url = url.replace("http://", "https://")
        with_cert = ssl.create_default_context(cafile=str(serving / "ca.crt"))
        with_cert.load_cert_chain(str(client_cert), str(client_key))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/bind", data=recording("bind.json"), ssl=with_cert) as response:
                assert response.status == 403
                assert "not one of ['system:node:worker-1']" in (await response.json())["Error"]
    finally:
        code, err = await stop(proc)
    assert code == 0, err
