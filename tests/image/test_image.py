"""The image `make image` builds: its config and layers, and meshfit served from inside it.

Inspection goes through a real registry tool: crane (go-containerregistry)
pushes the OCI layout to its own in-memory registry on loopback, validates it
there and reads back the config and the flattened filesystem. Then the layers
are unpacked and run the way a kubelet would run them — the image's own
entrypoint, environment and user, the root filesystem mounted read-only, an
``emptyDir``-like tmpfs on ``/tmp`` — in a private mount namespace with
chroot; the webhook inside answers a real AdmissionReview over TLS, and the
extender, from the same image, filters and scores nodes, and the fleet
controller starts with the shipped Deployment's arguments.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tools_fixtures import REPO, Image, build_image
from tools_fixtures import _missing as missing

from controlplane.meshfit_servers import generate_certs
from controlplane.ports import free_port

SIZE_LIMIT = 150 * 10**6
USER = "65532:65532"
#: Present means a shell, a package manager or a compiler got in.
FORBIDDEN = ("bin/sh", "usr/bin/sh", "bin/bash", "bin/dash", "usr/bin/dpkg", "usr/bin/apt", "usr/bin/apt-get",
             "usr/bin/gcc", "usr/bin/cc", "usr/bin/pip", "usr/bin/pip3", "usr/bin/perl")
POLICY_IN_IMAGE = "/usr/lib/python3/dist-packages/meshfit_data/manifests/policy.yaml"


@pytest.fixture(scope="module")
def registry(crane: Path) -> Iterator[str]:
    """``crane registry serve`` on loopback; yields host:port."""
    port = free_port()
    proc = subprocess.Popen([str(crane), "registry", "serve", "--address", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("crane registry serve did not come up")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def pushed(image: Image, crane: Path, registry: str) -> str:
    ref = f"{registry}/meshfit/meshfit:{image.summary['reference'].rsplit(':', 1)[1]}"
    done = subprocess.run([str(crane), "push", "--insecure", str(image.layout), ref], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("@" + image.digest), done.stdout
    return ref


def crane_out(crane: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(crane), "--insecure", *args], capture_output=True, timeout=300)


def test_registry_tool_validates_layout_and_tarball(image: Image, crane: Path, pushed: str) -> None:
    done = crane_out(crane, "validate", "--remote", pushed)
    assert done.returncode == 0, done.stderr
    done = crane_out(crane, "validate", "--tarball", str(image.tarball))
    assert done.returncode == 0, done.stderr
    assert crane_out(crane, "digest", pushed).stdout.decode().strip() == image.digest
    assert (image.out / "digest").read_text().strip() == image.digest


def test_config(image: Image, crane: Path, pushed: str) -> None:
    config = json.loads(crane_out(crane, "config", pushed).stdout)
    assert config == image.config
    c = config["config"]
    assert c["User"] == USER
    assert c["Entrypoint"] == ["/usr/bin/meshfit"]
    labels = c["Labels"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.source"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert len(image.manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 3


def test_filesystem(crane: Path, pushed: str, image: Image) -> None:
    """No setuid or setgid file, no shell, package manager or compiler; the size, reported."""
    export = subprocess.Popen([str(crane), "--insecure", "export", pushed, "-"], stdout=subprocess.PIPE)
    total, files, programs, special = 0, 0, [], []
    with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
        for member in tar:
            name = member.name.lstrip("./")
            if member.mode & 0o6000:
                special.append(name)
            if name in FORBIDDEN:
                programs.append(name)
            if member.isreg():
                total += member.size
                files += 1
    assert export.wait() == 0
    assert not special, f"setuid/setgid files: {special}"
    assert not programs, f"in the image: {programs}"
    print(f"\nimage {image.digest}: {total / 1e6:.1f} MB uncompressed in {files} files, "
          f"{image.summary['compressed_bytes'] / 1e6:.1f} MB compressed")
    assert total <= SIZE_LIMIT, f"{total / 1e6:.1f} MB uncompressed (target <= 150 MB)"


def test_digest_is_reproducible(image: Image, tmp_path: Path) -> None:
    """The same commit and the same locks give the same digest (base and deps layers come from the cache)."""
    again = build_image(tmp_path / "image", env={"SOURCE_DATE_EPOCH": str(image.summary["source_date_epoch"])})
    assert again.digest == image.digest


# --- running it -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rootfs(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("chroot") is None:
        missing("running the image's root filesystem needs root, unshare(1) and chroot(1)")
    root = tmp_path_factory.mktemp("rootfs")
    for layer in image.manifest["layers"]:
        with tarfile.open(image.blob(layer["digest"]), "r:gz") as tar:
            tar.extractall(root, numeric_owner=True, filter="fully_trusted")
    root.chmod(0o755)  # a runtime's root directory; pytest makes its directories 0700
    return root


def in_image(image: Image, root: Path, argv: list[str], *, files: Path | None = None,
             **popen) -> subprocess.Popen:
    """``argv`` after the image's entrypoint, as its user and with its environment, on a read-only root.

    ``files`` are copied to ``/tmp/in`` on the tmpfs, as a mounted Secret or ConfigMap would appear.
    """
    config = image.config["config"]
    script = r"""
set -eu
R="$1"; shift
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t tmpfs -o size=16m,mode=1777 tmpfs "$R/tmp"
mount --rbind /dev "$R/dev"
mount --bind /proc "$R/proc"
if [ -n "${FILES_DIR:-}" ]; then
  mkdir "$R/tmp/in" && cp "$FILES_DIR"/* "$R/tmp/in/"
  chown -R 65532:65532 "$R/tmp/in"
fi
exec env -i "$@"
"""
    user = config["User"]
    command = [*config["Env"], shutil.which("chroot") or "chroot", f"--userspec={user}", str(root), *config["Entrypoint"], *argv]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **({"FILES_DIR": str(files)} if files else {})}
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                             str(root), *command], env=env, **popen)


def test_version_inside(image: Image, rootfs: Path) -> None:
    proc = in_image(image, rootfs, ["--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == "meshfit 0.1.0"
    assert "meshfit.io/v1alpha1" in out


def test_the_controller_starts_from_inside_with_the_shipped_arguments(image: Image, rootfs: Path) -> None:
    """manifests/controller/deployment.yaml's command line parses in the image and gets as far as the cluster.

    No cluster is given (no service account token, no kubeconfig): the process must stop there, at
    loading its configuration, not earlier at an argument or a missing module.
    """
    deployment = yaml.safe_load((REPO / "manifests/controller/deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["meshfit"]
    args = [a.replace("--host=0.0.0.0", "--host=127.0.0.1") for a in container["args"]]
    proc = in_image(image, rootfs, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert err.strip().startswith("meshfit controller serve: cannot load kubeconfig"), err


def test_root_filesystem_is_read_only_inside(image: Image, rootfs: Path) -> None:
    """The check is real: a write to / fails, /tmp (the emptyDir) takes it; every module imports."""
    config = dict(image.config)
    probe = ("import errno, sys\n"
             "try:\n    open('/usr/lib/python3/dist-packages/x', 'w')\n"
             "except OSError as e:\n    assert e.errno == errno.EROFS, e\nelse:\n    sys.exit('root is writable')\n"
             "open('/tmp/x', 'w').write('ok')\n"
             # Every module of meshfit's imports in the image: no library or file is missing.
             "import importlib, pkgutil\n"
             "for top in ('policy', 'kube', 'serving', 'certs', 'webhook', 'extender', 'controller', 'cli',\n"
             "            'meshfit_data'):\n"
             "    pkg = importlib.import_module(top)\n"
             "    for m in pkgutil.walk_packages(pkg.__path__, top + '.'):\n"
             "        if not m.name.endswith('.__main__'):\n"
             "            importlib.import_module(m.name)\n"
             "import uvloop, orjson, yaml, cryptography.hazmat.bindings._rust, kubernetes.config\n"
             "import os; assert os.getuid() == 65532\n"
             "print('ok')\n")
    image_py = Image(image.out, image.layout, image.tarball, image.digest, image.manifest,
                     {**config, "config": {**config["config"], "Entrypoint": ["/usr/bin/python3.11"]}},
                     image.summary)
    proc = in_image(image_py, rootfs, ["-c", probe], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert out.strip() == "ok"


def test_webhook_serves_a_review_from_inside(image: Image, rootfs: Path, tmp_path: Path) -> None:
    certs = tmp_path / "tls"
    generate_certs(certs)
    port = free_port()
    log = (tmp_path / "webhook.log").open("w")
    proc = in_image(image, rootfs, ["webhook", "serve", "--cert-dir=/tmp/in", "--host=127.0.0.1",
                                    f"--port={port}", f"--policy={POLICY_IN_IMAGE}"],
                    files=certs, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", context=context, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the webhook in the image did not become ready:\n{(tmp_path / 'webhook.log').read_text()[-3000:]}")
            time.sleep(0.2)
        review = (REPO / "manifests/examples/review.json").read_bytes()
        request = urllib.request.Request(f"{base}/mutate", data=review,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, context=context, timeout=10) as r:
            answer = json.loads(r.read())
        response = answer["response"]
        assert response["uid"] == json.loads(review)["request"]["uid"]
        assert response["allowed"] is True
        assert response["patchType"] == "JSONPatch"
        patch = json.loads(base64.b64decode(response["patch"]))
        added = json.dumps(patch)
        assert "rpc-mesh" in added and "accounting" in added
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
    assert proc.returncode == 0, (tmp_path / "webhook.log").read_text()[-3000:]


def test_extender_serves_from_inside(image: Image, rootfs: Path, tmp_path: Path) -> None:
    """The same image runs the extender: a snapshot of two nodes, a filter and a prioritize call."""
    files = tmp_path / "in"
    files.mkdir()
    nodes = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
              "status": {"allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"}}}
             for name, cpu in (("node-a", "4"), ("node-b", "16"))]
    (files / "snapshot.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    port = free_port()
    log = (tmp_path / "extender.log").open("w")
    proc = in_image(image, rootfs, ["extender", "serve", "--snapshot=/tmp/in/snapshot.json", "--host=127.0.0.1",
                                    f"--port={port}", f"--policy={POLICY_IN_IMAGE}"],
                    files=files, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    pod = {"metadata": {"name": "p", "namespace": "shop", "uid": "u1"},
           "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the extender in the image did not become ready:\n{(tmp_path / 'extender.log').read_text()[-3000:]}")
            time.sleep(0.2)

        def post(verb: str) -> object:
            body = json.dumps({"Pod": pod, "NodeNames": ["node-a", "node-b"]}).encode()
            request = urllib.request.Request(f"{base}/{verb}", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())

        assert post("filter")["NodeNames"] == ["node-a", "node-b"]
        scores = {s["Host"]: s["Score"] for s in post("prioritize")}
        assert set(scores) == {"node-a", "node-b"} and scores["node-b"] >= scores["node-a"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
