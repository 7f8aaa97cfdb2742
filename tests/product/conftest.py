"""The product as a newcomer starts it: `make dev`, exactly as the README says.

These tests start the real `make dev` (the same Makefile target, process manager, state
directory `.dev/` and defaults; no test-only settings: scripts/make_dev_run.py), drive it
through nginx :9000 like a user, and stop it with Ctrl-C.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "microservices" / "common"))

import fleet  # noqa: E402
import llm_server  # noqa: E402
from fleet_services import NGINX_PORT  # noqa: E402
from make_dev_run import PORTS, MakeDevRun, newcomer_env, port_free, session_pids  # noqa: E402

BASE_URL = f"http://127.0.0.1:{NGINX_PORT}"
LOG_DIR = fleet.STATE / "test-logs"

__all__ = ["BASE_URL", "PORTS", "ROOT", "fleet", "llm_server", "port_free", "session_pids", "start_make_dev"]

_runs = 0


def start_make_dev() -> MakeDevRun:
    """`make dev` in this checkout, as a newcomer's shell runs it."""
    global _runs
    _runs += 1
    return MakeDevRun(ROOT, LOG_DIR / f"make-dev-{_runs}.log", newcomer_env(ROOT))


@pytest.fixture(scope="session")
def free_ports() -> None:
    busy = [p for p in PORTS if not port_free(p)]
    if busy:
        raise RuntimeError(f"ports {busy} are taken: stop `make dev` (or whatever holds them) first")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=BASE_URL, timeout=60) as c:
        yield c
