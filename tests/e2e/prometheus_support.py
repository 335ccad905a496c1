"""A real Prometheus server scraping a small metrics emitter, for the rollout's end-to-end tests.

The emitter (``http.server`` on loopback, in a thread of the test process)
serves, per registered pod, the series an application and its sidecar would
export: ``app_requests_total``, ``app_errors_total``, ``app_latency_seconds`` and
``mesh_sidecar_up``, labelled ``namespace`` and ``pod``. A pod is healthy (1% of
its requests fail) until it is *regressed* (half of them fail from then on):
the test regresses a pod by hand, or names a version whose pods regress as
soon as their ``meshfit.io/status`` says they run it — a bad release, as the
rollout must see it.

Prometheus is Debian's ``/usr/bin/prometheus`` with a temporary config and
storage, scraping every second; it is stopped after. Without the binary the
tests are skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from controlplane.ports import free_port

PROMETHEUS = os.environ.get("MESHFIT_PROMETHEUS", "/usr/bin/prometheus")
REQUESTS_PER_SECOND = 100.0
HEALTHY_ERRORS, REGRESSED_ERRORS = 0.01, 0.5


@dataclass
class Series:
    started: float
    errors_before: float = 0.0
    regressed_at: float | None = None

    def values(self, now: float) -> tuple[float, float]:
        requests = REQUESTS_PER_SECOND * (now - self.started)
        if self.regressed_at is None:
            return requests, self.errors_before + HEALTHY_ERRORS * requests
        healthy = REQUESTS_PER_SECOND * (self.regressed_at - self.started)
        return requests, HEALTHY_ERRORS * healthy + REGRESSED_ERRORS * REQUESTS_PER_SECOND * (now - self.regressed_at)


@dataclass
class Emitter:
    """Per-pod application and sidecar series on ``http://127.0.0.1:port/metrics``."""

    port: int = field(default_factory=free_port)
    pods: dict[tuple[str, str], Series] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    def add(self, namespace: str, *names: str) -> None:
        with self.lock:
            for name in names:
                self.pods.setdefault((namespace, name), Series(time.time()))

    def regress(self, namespace: str, name: str) -> None:
        with self.lock:
            series = self.pods[namespace, name]
            if series.regressed_at is None:
                series.regressed_at = time.time()

    def regressed(self, namespace: str, name: str) -> bool:
        with self.lock:
            return self.pods[namespace, name].regressed_at is not None

    def text(self) -> bytes:
        now = time.time()
        lines = ["# TYPE app_requests_total counter", "# TYPE app_errors_total counter",
                 "# TYPE app_latency_seconds gauge", "# TYPE mesh_sidecar_up gauge"]
        with self.lock:
            for (namespace, pod), series in sorted(self.pods.items()):
                labels = f'namespace="{namespace}",pod="{pod}"'
                requests, errors = series.values(now)
                lines += [f"app_requests_total{{{labels}}} {requests:.3f}", f"app_errors_total{{{labels}}} {errors:.3f}",
                          f"app_latency_seconds{{{labels}}} {0.4 if series.regressed_at else 0.02}",
                          f"mesh_sidecar_up{{{labels}}} 1"]
        return ("\n".join(lines) + "\n").encode()

    def start(self) -> Emitter:
        emitter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = emitter.text()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True, name="emitter").start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Prometheus:
    """``/usr/bin/prometheus`` on a free loopback port, scraping the emitter every second."""

    workdir: Path
    emitter: Emitter
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Prometheus:
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "emitter", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{self.emitter.port}"]}]}],
        }))
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout}s")

    def query(self, promql: str) -> list[Any]:
        with urllib.request.urlopen(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}),
                                    timeout=5) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prometheus_binary() -> str:
    if os.access(PROMETHEUS, os.X_OK):
        return PROMETHEUS
    found = shutil.which("prometheus")
    if found:
        return found
    message = (f"no Prometheus server at {PROMETHEUS}: `make prometheus` installs Debian's prometheus package "
               "(hack/install-promtool.sh)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    global PROMETHEUS
    PROMETHEUS = prometheus_binary()
    emitter = Emitter().start()
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), emitter)
    try:
        yield server.start()
    finally:
        server.stop()
        emitter.stop()

