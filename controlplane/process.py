"""One control-plane program as a child process with its own log file.

Why a class and not bare Popen: every component needs the same four things —
output to a file that survives for failure reports, a clean SIGTERM-then-SIGKILL
stop, a way to notice an early crash while waiting for health, and a guarantee
that it dies with the test process even when that process is killed hard.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO

# Proxy settings would send the apiserver's calls to webhooks and the
# scheduler's calls to extenders through a proxy; all traffic here is loopback.
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


_PR_SET_PDEATHSIG = 1
# Resolved once in the parent: between fork and exec the child must not
# dlopen or import anything (another thread may have held those locks).
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM us when the parent goes away.

    Without this a test run killed by a CI timeout leaves etcd and
    kube-apiserver running, holding ports and memory for the next run.
    (The signal fires when the *thread* that forked exits, so start clusters
    from a long-lived thread, as pytest does.)
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class ComponentExited(RuntimeError):
    """A component stopped on its own; the message carries its log tail."""

    def __init__(self, name: str, status: int, log_tail: str) -> None:
        super().__init__(f"{name} exited with status {status}; last log lines:\n{log_tail}")
        self.name = name
        self.status = status


class Component:
    """A started-on-demand child process writing to ``<workdir>/<name>.log``."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        """Start the program; the log file is appended to, so restarts keep history."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        child_env = {k: v for k, v in (env or os.environ).items() if k not in _PROXY_VARS}
        # Open for the process's lifetime; closed in stop().
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self._log.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env,
            # Its own session: a terminal's Ctrl-C reaches only the Python
            # process, which then stops components in order.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a pre-resolved prctl call
        )

    def check_alive(self) -> None:
        """Raise ComponentExited (with the log tail) if the process has ended."""
        if self._proc is not None and self._proc.poll() is not None:
            raise ComponentExited(self.name, self._proc.returncode, self.log_tail())

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; return the exit status."""
        proc, self._proc = self._proc, None
        status: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            status = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return status

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log file ('' if there is none yet)."""
        try:
            with open(self.log_path, "rb") as f:
                tail = deque(f, maxlen=lines)
        except FileNotFoundError:
            return ""
        return b"".join(tail).decode("utf-8", "replace")
