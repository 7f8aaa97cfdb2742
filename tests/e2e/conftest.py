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
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "microservices" / "common"))  # harvis_testkit for the tests

import fleet  # noqa: E402
from fleet_services import NGINX_PORT, SERVICES, Service, by_name  # noqa: E402
from make_dev_run import port_free  # noqa: E402

BASE_URL = f"http://127.0.0.1:{NGINX_PORT}"
LOG_DIR = fleet.STATE / "test-logs"

# Settings the end-to-end fleet runs with: real Redis for rate limits, an IP
# limit high enough that one machine running the whole suite isn't locked out
# (the per-IP limit has its own unit tests).
E2E_ENV = {
    "REDIS_URL": os.environ.get("HARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "LOGIN_RATE_PER_IP": "500",
    "LOGIN_RATE_PER_ACCOUNT": "5",
    # The suite signs up hundreds of users from 127.0.0.1 (the per-address limit has its own tests).
    "SIGNUP_RATE_PER_IP": "100000",
    "LOG_LEVEL": "INFO",
    # browser-service: the browser tests serve their pages on 127.0.0.2; 127.0.0.1 stays blocked.
    "BROWSER_SSRF_ALLOWLIST": "127.0.0.2/32",
}

# mcp-service: the real local servers tests/e2e/test_mcp.py starts on these fixed ports
# (SMTP, DNS, whois, a fake of Twilio's API); loopback is opened for its network tools.
MCP_E2E_PORTS = {"smtp": 18025, "dns": 18053, "whois": 18043, "twilio": 18090}
E2E_ENV.update(
    {
        "MCP_WORKSPACE_DIR": str(fleet.STATE / "test-mcp-workspaces"),
        # The loopback servers, and the documentation ranges the suite's DNS zone answers with
        # (non-public, so the DNS tools would withhold them otherwise).
        "MCP_SSRF_ALLOWLIST": "127.0.0.1/32,192.0.2.0/24,2001:db8::/32",
        "MCP_DNS_NAMESERVERS": f"127.0.0.1:{MCP_E2E_PORTS['dns']}",
        "MCP_WHOIS_SERVER": "127.0.0.1",
        "MCP_WHOIS_PORT": str(MCP_E2E_PORTS["whois"]),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(MCP_E2E_PORTS["smtp"]),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "harvis@example.test",
        "WEBHOOK_SECRET": "e2e-webhook-secret-0123456789",
        "TWILIO_API_BASE": f"http://127.0.0.1:{MCP_E2E_PORTS['twilio']}",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "e2e-twilio-token",
        "TWILIO_FROM_NUMBER": "+15550001111",
    }
)

# research-service: tests/e2e/test_research.py serves the fixture web on 127.0.0.3 (opened by
# the allowlist; 127.0.0.1 stays blocked) and a fake SearXNG (tests/fakes) on these fixed ports.
RESEARCH_E2E_PORTS = {"web": 18631, "searxng": 18632}
E2E_ENV.update(
    {
        "RESEARCH_PROVIDERS": "searxng",
        "SEARXNG_URL": f"http://127.0.0.1:{RESEARCH_E2E_PORTS['searxng']}",
        "RESEARCH_SSRF_ALLOWLIST": "127.0.0.3/32",
        # n8n's egress proxy opens the same fixture web (tests/e2e/test_n8n.py).
        "N8N_SSRF_ALLOWLIST": "127.0.0.3/32",
        "RESEARCH_FETCH_BUDGET_S": "4",
    }
)

# Chat in the e2e fleet runs against the real demo model server (Gemma 3 270M via
# llama-cpp-python, scripts/llm_server.py), whatever Ollama the machine may have;
# tests/e2e/test_chat.py switches core-api to the fake Ollama for deterministic checks.
os.environ.setdefault("HARVIS_LLM", "demo")
LLM_READY_TIMEOUT_S = 120


class Fleet:
    def __init__(self) -> None:
        busy = [p for p in [NGINX_PORT, *(s.port for s in SERVICES)] if not port_free(p)]
        if busy:
            raise RuntimeError(f"ports {busy} are taken: stop `make dev` (or whatever holds them) first")
        pgdata = fleet.STATE / "test-pgdata"
        fleet.stop_embedded_postgres(pgdata)
        shutil.rmtree(pgdata, ignore_errors=True)  # every run starts from an empty database
        self.n8n_dir = fleet.STATE / "test-n8n"  # a fresh n8n (owner, API key, SQLite) per run
        shutil.rmtree(self.n8n_dir, ignore_errors=True)
        self.prep = fleet.Prepared(
            os.environ.get("HARVIS_TEST_DATABASE_URL") or None, pgdata=pgdata, n8n_dir=self.n8n_dir
        )
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

    def start_service(self, svc: Service, extra_env: dict[str, str] | None = None) -> None:
        env = {**self.prep.env_for(svc), **E2E_ENV, **(extra_env or {})}
        self._spawn(svc.name, fleet.service_command(svc, self.prep.venvs), env)

    def start_replica(self, svc: Service, ordinal: int, port: int, extra_env: dict[str, str] | None = None) -> str:
        """Another replica of `svc` on `port` (tests/e2e/test_replicas.py); returns its name."""
        name = f"{svc.name}-{ordinal}"
        env = {**self.prep.env_for(svc), **E2E_ENV, "REPLICA_ORDINAL": str(ordinal), **(extra_env or {})}
        self._spawn(name, fleet.service_command(svc, self.prep.venvs, port), env)
        return name

    def wait_service(self, svc: Service, timeout: float = 60) -> None:
        if not fleet.wait_http(f"http://127.0.0.1:{svc.port}/health", timeout):
            tail = self.log_path(svc.name).read_text()[-3000:]
            raise RuntimeError(f"{svc.name} did not become healthy:\n{tail}")

    def start(self) -> None:
        if self.prep.llm_command:  # the demo model server (loads in ~3 s)
            self._spawn("llm", self.prep.llm_command, dict(os.environ))
        if self.prep.n8n_command:  # n8n (ready in ~10-20 s; n8n-integration reads its key file when it appears)
            self._spawn("n8n", self.prep.n8n_command, {**os.environ, **self.prep.n8n_proc_env})
        for svc in SERVICES:
            self.start_service(svc)
        self._spawn("nginx", fleet.nginx_command(self.prep.nginx, self.prep.nginx_conf), dict(os.environ))
        for svc in SERVICES:
            self.wait_service(svc)
        if not fleet.wait_http(f"{BASE_URL}/health", 30):
            raise RuntimeError("nginx did not come up:\n" + self.log_path("nginx").read_text()[-3000:])
        llm_base = self.prep.llm_env.get("OPENAI_API_BASE")
        if self.prep.llm_command and llm_base and not fleet.wait_http(f"{llm_base}/models", LLM_READY_TIMEOUT_S):
            # Only chat's real-model tests need it: say why they fail, don't stop the others.
            print("demo model server did not come up:\n" + self.log_path("llm").read_text()[-3000:], file=sys.stderr)

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

    def restart(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        svc = by_name(name)
        self.stop(name)
        self.start_service(svc, extra_env)
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


def admin_cli(fleet_proc: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m core_api.admin …` as an operator runs it: core-api's venv and DATABASE_URL."""
    core = by_name("core-api")
    python = fleet_proc.prep.venvs[core.name] / "bin" / "python"
    return subprocess.run(
        [str(python), "-m", "core_api.admin", *args],
        env=fleet_proc.prep.env_for(core),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def admin(fleet_proc: Fleet) -> Iterator[User]:
    """A user made administrator with the CLI; their existing token becomes an admin's
    within USER_STATE_CACHE_S, without logging in again."""
    with httpx.Client(base_url=BASE_URL, timeout=30) as c:
        u = new_user(c)
        done = admin_cli(fleet_proc, "grant", u.email)
        assert done.returncode == 0, done.stdout + done.stderr
        assert wait_for(lambda: c.get("/api/auth/stats", headers=u.bearer).status_code == 200, 15)
    yield u


# ---------------------------------------------------------------- helper processes

FAKES = ROOT / "tests" / "fakes"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_up(url: str, timeout: float = 1) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(fleet_proc: Fleet, name: str, args: list[str]) -> subprocess.Popen[bytes]:
    """A helper process (fake, fixture site) run with this interpreter, logging beside the fleet's."""
    log = fleet_proc.log_path(name).open("ab")
    return subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))


def stop_all(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        p.terminate()
        p.wait(10)


class FakeOllamaProcess:
    """The fake Ollama (tests/fakes/fake_ollama.py) as a process on a free port; a context
    manager, and stoppable mid-way for "backend down" checks."""

    def __init__(self, fleet_proc: Fleet, name: str = "fake-ollama") -> None:
        self.fleet_proc, self.name = fleet_proc, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self.fleet_proc, self.name, [str(FAKES / "fake_ollama.py"), "--port", str(self.port)])
        assert wait_for(lambda: http_up(self.url + "/api/version"), 15), "fake ollama did not start"

    def stop(self) -> None:
        if self.proc is not None:
            stop_all(self.proc)
            self.proc = None

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_fake/stats", timeout=5).json()

    def __enter__(self) -> FakeOllamaProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


RESEARCH_WEB = f"http://127.0.0.3:{RESEARCH_E2E_PORTS['web']}"
RESEARCH_SEARXNG = f"http://127.0.0.1:{RESEARCH_E2E_PORTS['searxng']}"


@pytest.fixture(scope="module")
def research_web(fleet_proc: Fleet) -> Iterator[None]:
    """The research fixture web (tests/e2e/sites/research_web.py, on 127.0.0.3, which the fleet's
    RESEARCH_SSRF_ALLOWLIST opens) and the fake SearXNG, on the ports the fleet's settings name."""
    web = spawn(fleet_proc, "research-web", ["tests/e2e/sites/research_web.py", "--host", "127.0.0.3",
                                              "--port", str(RESEARCH_E2E_PORTS["web"]), "--slow-s", "30"])  # fmt: skip
    sx = spawn(fleet_proc, "fake-searxng", [str(FAKES / "fake_searxng.py"), "--port",
                                             str(RESEARCH_E2E_PORTS["searxng"]), "--web", RESEARCH_WEB])  # fmt: skip
    try:
        ready = wait_for(lambda: http_up(f"{RESEARCH_WEB}/_web/stats") and http_up(f"{RESEARCH_SEARXNG}/healthz"), 15)
        assert ready, "fixture web did not start"
        yield
    finally:
        stop_all(web, sx)
