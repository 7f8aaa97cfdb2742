"""The product as a newcomer starts it: `make dev`, exactly as the README says.

These tests start the real `make dev` (the same Makefile target, process manager, state
directory `.dev/` and defaults; no test-only settings), drive it through nginx :9000 like a
user, and stop it with Ctrl-C (SIGINT to its process group, as a terminal sends it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "microservices" / "common"))

import fleet  # noqa: E402
import llm_server  # noqa: E402
import n8n_server  # noqa: E402
from fleet_services import NGINX_PORT, SERVICES  # noqa: E402

BASE_URL = f"http://127.0.0.1:{NGINX_PORT}"
LOG_DIR = fleet.STATE / "test-logs"
# Every port `make dev` listens on by default.
PORTS = [NGINX_PORT, *(s.port for s in SERVICES), llm_server.DEFAULT_PORT, n8n_server.DEFAULT_PORT]


def newcomer_env() -> dict[str, str]:
    """The caller's environment without any Harvis setting: what `make dev` gets on a fresh
    shell. (HARVIS_CACHE stays: it only says where installs are cached.)"""
    documented = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.lstrip("# ").split("=", 1)[0].strip()
        if name.isupper() and name.replace("_", "").isalnum():
            documented.add(name)
    return {
        k: v
        for k, v in os.environ.items()
        if k not in documented and not (k.startswith("HARVIS_") and k != "HARVIS_CACHE")
    }


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def session_pids(sid: int) -> list[int]:
    """Processes still in the session `make dev` was started in (anything it left running
    that didn't start a session of its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                pids.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
    return pids


class MakeDev:
    """One `make dev` run, its output in .dev/test-logs/make-dev-N.log."""

    runs = 0

    def __init__(self) -> None:
        MakeDev.runs += 1
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"make-dev-{MakeDev.runs}.log"
        self.started = time.monotonic()
        self.healthy_after: float | None = None
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["make", "dev"],
            cwd=str(ROOT),
            env=newcomer_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the "terminal" we send Ctrl-C to
        )
        self.sid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make dev exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if "Harvis is up" in self.log():
                self.healthy_after = time.monotonic() - self.started
                return
            time.sleep(0.5)
        raise AssertionError(f"make dev not healthy within {timeout} s:\n{self.log()[-4000:]}")

    def ctrl_c(self, timeout: float = 90) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            left = session_pids(self.sid)
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"make dev still running {timeout} s after Ctrl-C; pids {left}") from None

    def kill_everything(self) -> None:
        """Cleanup after a failed test: nothing may outlive the test run."""
        for pid in session_pids(self.sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        # supervisord's programs run in process groups of their own, in the same session.
        for pid in session_pids(self.sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        fleet.stop_embedded_postgres(fleet.STATE / "pgdata")


@pytest.fixture(scope="session")
def free_ports() -> None:
    busy = [p for p in PORTS if not port_free(p)]
    if busy:
        raise RuntimeError(f"ports {busy} are taken: stop `make dev` (or whatever holds them) first")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        yield c
