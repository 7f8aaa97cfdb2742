"""Starts the real native fleet once per test session: embedded PostgreSQL,
all seven services from their own venvs, nginx on :9000 — exactly what
`make dev` runs, with processes started one by one so a test can stop one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import fleet  # noqa: E402
from fleet_services import NGINX_PORT, SERVICES, Service, by_name  # noqa: E402

BASE_URL = f"http://127.0.0.1:{NGINX_PORT}"
LOG_DIR = fleet.STATE / "test-logs"

# Settings the end-to-end fleet runs with: real Redis for rate limits, an IP
# limit high enough that one machine running the whole suite isn't locked out
# (the per-IP limit has its own unit tests).
E2E_ENV = {
    "REDIS_URL": os.environ.get("HARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "LOGIN_RATE_PER_IP": "500",
    "LOGIN_RATE_PER_ACCOUNT": "5",
    "LOG_LEVEL": "INFO",
}


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Fleet:
    def __init__(self) -> None:
        busy = [p for p in [NGINX_PORT, *(s.port for s in SERVICES)] if not _port_free(p)]
        if busy:
            raise RuntimeError(f"ports {busy} are taken: stop `make dev` (or whatever holds them) first")
        pgdata = fleet.STATE / "test-pgdata"
        fleet.stop_embedded_postgres(pgdata)
        shutil.rmtree(pgdata, ignore_errors=True)  # every run starts from an empty database
        self.prep = fleet.Prepared(os.environ.get("HARVIS_TEST_DATABASE_URL") or None, pgdata=pgdata)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        shutil.rmtree(LOG_DIR, ignore_errors=True)
        LOG_DIR.mkdir(parents=True)
        self._flush_redis()

    def _flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(E2E_ENV["REDIS_URL"]).flushdb()

    def log_path(self, name: str) -> Path:
        return LOG_DIR / f"{name}.log"

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = self.log_path(name).open("ab")
        self.procs[name] = subprocess.Popen(
            cmd, env=env, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_service(self, svc: Service) -> None:
        env = {**self.prep.env_for(svc), **E2E_ENV}
        self._spawn(svc.name, fleet.service_command(svc, self.prep.venvs), env)

    def wait_service(self, svc: Service, timeout: float = 60) -> None:
        if not fleet.wait_http(f"http://127.0.0.1:{svc.port}/health", timeout):
            tail = self.log_path(svc.name).read_text()[-3000:]
            raise RuntimeError(f"{svc.name} did not become healthy:\n{tail}")

    def start(self) -> None:
        for svc in SERVICES:
            self.start_service(svc)
        self._spawn("nginx", fleet.nginx_command(self.prep.nginx, self.prep.nginx_conf), dict(os.environ))
        for svc in SERVICES:
            self.wait_service(svc)
        if not fleet.wait_http(f"{BASE_URL}/health", 30):
            raise RuntimeError("nginx did not come up:\n" + self.log_path("nginx").read_text()[-3000:])

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart(self, name: str) -> None:
        svc = by_name(name)
        self.stop(name)
        self.start_service(svc)
        self.wait_service(svc)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        self.prep.close()


@pytest.fixture(scope="session")
def fleet_proc() -> Iterator[Fleet]:
    f = Fleet()
    try:
        f.start()
        yield f
    finally:
        f.close()


@pytest.fixture
def client(fleet_proc: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=BASE_URL, timeout=30) as c:
        yield c


class User:
    def __init__(self, username: str, email: str, password: str, token: str) -> None:
        self.username, self.email, self.password, self.token = username, email, password, token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def new_user(client: httpx.Client) -> User:
    suffix = uuid.uuid4().hex[:10]
    username, email, password = f"u{suffix}", f"u{suffix}@example.com", f"Correct-Horse-{suffix}-Battery"
    r = client.post("/api/auth/signup", json={"username": username, "email": email, "password": password})
    assert r.status_code == 200, r.text
    return User(username, email, password, r.json()["access_token"])


@pytest.fixture
def user(client: httpx.Client) -> User:
    return new_user(client)


def wait_for(predicate, timeout: float = 10, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
