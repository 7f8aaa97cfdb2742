"""One `make dev`, started and stopped from another program the way a person does it: the
product tests (tests/product/) and the first-run benchmark (bench/first_run.py).

It runs in a session and process group of its own (a terminal's), with the caller's
environment minus every Harvis setting, and is stopped with Ctrl-C: SIGINT to that group.
Stdlib only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import fleet
import llm_server
import n8n_server
from fleet_services import NGINX_PORT, SERVICES

UP_LINE = "Harvis is up"
# Every port `make dev` listens on by default: nginx, the services, the demo model, n8n.
PORTS = (
    NGINX_PORT,
    *(s.port for s in SERVICES),
    llm_server.DEFAULT_PORT,
    n8n_server.DEFAULT_PORT,
    fleet.PROMETHEUS_PORT,
)


def newcomer_env(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (the caller's environment) without any setting `.env.example` documents nor any
    HARVIS_* variable but HARVIS_CACHE (which only says where installs are cached): what
    `make dev` gets in a newcomer's shell."""
    documented = set()
    for line in (root / ".env.example").read_text().splitlines():
        name = line.lstrip("# ").split("=", 1)[0].strip()
        if name.isupper() and name.replace("_", "").isalnum():
            documented.add(name)
    base = dict(os.environ if base is None else base)
    return {
        k: v for k, v in base.items() if k not in documented and not (k.startswith("HARVIS_") and k != "HARVIS_CACHE")
    }


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def session_pids(sid: int) -> list[int]:
    """Processes still in session `sid`: whatever a run left behind that didn't start a
    session of its own."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
    return pids


def describe(pids: list[int]) -> list[str]:
    """`pid: command line` of each, for a message about what was left running."""
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = "(gone)"
        out.append(f"{pid}: {cmd[:160]}")
    return out


class MakeDevRun:
    """`make dev` in `root`, its output in `log_path`."""

    def __init__(self, root: Path, log_path: Path, env: dict[str, str]) -> None:
        self.root = root
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.healthy_after: float | None = None
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["make", "dev"],
                cwd=str(root),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session and group: the "terminal" Ctrl-C goes to
            )
        self.sid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float) -> float:
        """Seconds from start until the runner said the fleet is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"make dev exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if UP_LINE in self.log():
                self.healthy_after = time.monotonic() - self.started
                return self.healthy_after
            time.sleep(0.5)
        raise RuntimeError(f"make dev not healthy within {timeout:.0f} s:\n{self.log()[-4000:]}")

    def ctrl_c(self, timeout: float = 90) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            left = session_pids(self.sid)
            self.kill_everything()
            raise RuntimeError(f"make dev still running {timeout:.0f} s after Ctrl-C; pids {left}") from None

    def kill_everything(self) -> None:
        """After a failure: nothing of this run may outlive it (supervisord's programs run in
        process groups of their own, in the same session)."""
        for pid in session_pids(self.sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            self.proc.wait(10)
