"""Two replicas of every service behind the gateway (issue 20), natively: core-api's
`*_URL` settings list both, each second replica runs with REPLICA_ORDINAL=1 on its port + 100.

- Requests without a session spread over both replicas, and the fleet's per-service checks
  (tests/product/features.py, the same ones `make dev` and the images pass) still pass after
  one replica of every service is killed.
- Browser and vibe-coding sessions live in one replica: every request naming one (in the
  path, the query or the JSON body; HTTP and WebSocket) reaches the replica that made it, and
  once that replica is gone the session answers 410, not another replica's 404. The second
  vibe-coding replica has a workspace directory of its own, so a misrouted request could not
  find the session's files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fleet
import httpx
import pytest
from conftest import BASE_URL, Fleet, new_user
from fleet_services import SERVICES, Service, by_name
from test_observability import metrics, value

from harvis_common.replicas import owner_ordinal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "product"))  # the product checks
import features
import sandbox_checks

REPLICATED = [svc for svc in SERVICES if svc.name != "core-api"]
OFFSET = 100  # the second replica's port: the service's + 100 (8101 … 8106)
WS_URL = BASE_URL.replace("http://", "ws://")


@dataclass
class Replicas:
    fleet: Fleet
    names: dict[str, str]  # service -> the second replica's process name

    def port(self, svc: Service, ordinal: int) -> int:
        return svc.port + OFFSET * ordinal

    def name(self, svc: Service, ordinal: int) -> str:
        return svc.name if ordinal == 0 else self.names[svc.name]

    def kill(self, svc: Service, ordinal: int) -> None:
        """SIGKILL, as a node failure does: no graceful shutdown, connections just drop."""
        proc = self.fleet.procs.pop(self.name(svc, ordinal))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _wait_healthy(fleet_proc: Fleet, name: str, port: int) -> None:
    if not fleet.wait_http(f"http://127.0.0.1:{port}/health", 120):
        raise RuntimeError(f"{name} did not become healthy:\n{fleet_proc.log_path(name).read_text()[-3000:]}")


@pytest.fixture(scope="module")
def replicas(fleet_proc: Fleet) -> Iterator[Replicas]:
    workspaces = fleet.STATE / "test-vibe-workspaces-1"
    shutil.rmtree(workspaces, ignore_errors=True)
    names: dict[str, str] = {}
    try:
        # What a second replica on the same host can't share: vibe-coding's workspaces (to catch
        # misrouting), n8n-integration's egress proxy port (n8n itself keeps using the first's).
        own = {
            "vibe-coding": {"VIBE_WORKSPACE_DIR": str(workspaces)},
            "n8n-integration": {"N8N_EGRESS_PROXY_PORT": str(5690 + OFFSET)},
        }
        for svc in REPLICATED:
            names[svc.name] = fleet_proc.start_replica(svc, 1, svc.port + OFFSET, own.get(svc.name))
        for svc in REPLICATED:
            _wait_healthy(fleet_proc, names[svc.name], svc.port + OFFSET)
        lists = {svc.url_env: f"http://127.0.0.1:{svc.port},http://127.0.0.1:{svc.port + OFFSET}" for svc in REPLICATED}
        fleet_proc.restart("core-api", lists)
        yield Replicas(fleet_proc, names)
    finally:
        for name in names.values():
            fleet_proc.stop(name)
        for svc in REPLICATED:  # the first replicas a test killed come back as the fleet had them
            if svc.name not in fleet_proc.procs:
                fleet_proc.start_service(svc)
                fleet_proc.wait_service(svc, 120)
        fleet_proc.restart("core-api")
        shutil.rmtree(workspaces, ignore_errors=True)


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    """A page for the browser sessions, on 127.0.0.2 (the fleet's BROWSER_SSRF_ALLOWLIST)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><head><title>Pinned</title></head><body><h1>Pinned</h1></body></html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/"
    finally:
        server.shutdown()


def _served(port: int) -> float:
    return value(metrics(port), "harvis_http_requests_total", route="/api/mcp/tools")


def test_requests_without_a_session_spread_over_both_replicas(client: httpx.Client, replicas: Replicas) -> None:
    mcp = by_name("mcp-service")
    before = [_served(replicas.port(mcp, i)) for i in (0, 1)]
    user = new_user(client)
    for _ in range(10):
        r = client.get("/api/mcp/tools", headers=user.bearer)
        assert r.status_code == 200, r.text
    after = [_served(replicas.port(mcp, i)) for i in (0, 1)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [5, 5]


def _one_per_replica(create: Callable[[], httpx.Response]) -> dict[int, str]:
    """{ordinal: session id}: sessions made until each replica owns one (creations alternate)."""
    owned: dict[int, str] = {}
    for _ in range(4):
        r = create()
        assert r.status_code == 200, r.text
        sid = r.json()["session_id"]
        owned.setdefault(owner_ordinal(sid), sid)  # type: ignore[arg-type]
        if len(owned) == 2:
            return owned
    raise AssertionError(f"sessions all on one replica: {owned}")


def _use_browser_session(client: httpx.Client, headers: dict[str, str], sid: str, url: str) -> None:
    # The id in the path, the query string and the JSON body.
    got = client.get(f"/api/browser/session/{sid}", headers=headers)
    assert got.status_code == 200 and got.json()["session_id"] == sid, got.text
    shot = client.get("/api/browser/screenshot", params={"session_id": sid}, headers=headers, timeout=60)
    assert shot.status_code == 200 and shot.content[:8] == b"\x89PNG\r\n\x1a\n", shot.text[:300]
    went = client.post("/api/browser/navigate", json={"url": url, "session_id": sid}, headers=headers, timeout=90)
    assert went.status_code == 200 and went.json()["session_id"] == sid and went.json()["title"] == "Pinned", went.text


def _use_vibe_session(client: httpx.Client, user_token: str, headers: dict[str, str], sid: str) -> None:
    wrote = client.post(
        f"/api/vibe/files/{sid}/write", json={"path": "pinned.py", "content": "print('on my replica')"}, headers=headers
    )
    assert wrote.status_code == 200, wrote.text
    ran = client.post(
        "/api/vibe/execute",
        json={"session_id": sid, "command": "python3 pinned.py", "language": "python"},
        headers=headers,
        timeout=120,
    )
    assert ran.status_code == 200 and ran.json()["output"].strip() == "on my replica", ran.text
    url = f"{WS_URL}/api/vibecoding/container/{sid}/terminal?token={user_token}"
    seen, code = asyncio.run(sandbox_checks.terminal(url, "cat pinned.py\r", "on my replica"))
    assert "on my replica" in seen and code == 1000, (code, seen[-500:])


def _gone(r: httpx.Response) -> None:
    assert r.status_code == 410, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json") and r.json()["message"], r.text


def test_sessions_stay_on_their_replica_and_answer_410_when_it_is_gone(
    client: httpx.Client, replicas: Replicas, page: str
) -> None:
    user = new_user(client)
    browser = _one_per_replica(
        lambda: client.post("/api/browser/navigate", json={"url": page}, headers=user.bearer, timeout=90)
    )
    vibe = _one_per_replica(
        lambda: client.post("/api/vibe/session/create", json={"name": "r", "language": "python"}, headers=user.bearer)
    )
    for ordinal in (0, 1):
        _use_browser_session(client, user.bearer, browser[ordinal], page)
        _use_vibe_session(client, user.token, user.bearer, vibe[ordinal])

    replicas.kill(by_name("browser-service"), 1)
    replicas.kill(by_name("vibe-coding"), 1)
    lost_browser, lost_vibe = browser[1], vibe[1]
    _gone(client.get(f"/api/browser/session/{lost_browser}", headers=user.bearer))
    _gone(client.get("/api/browser/screenshot", params={"session_id": lost_browser}, headers=user.bearer))
    _gone(client.post("/api/browser/navigate", json={"url": page, "session_id": lost_browser}, headers=user.bearer))
    _gone(client.get(f"/api/vibe/files/{lost_vibe}/tree", headers=user.bearer))
    _gone(
        client.post(
            "/api/vibe/execute", json={"session_id": lost_vibe, "code": "1", "language": "python"}, headers=user.bearer
        )
    )

    # The survivors' sessions carry on, and new sessions land on the replica that is left.
    _use_browser_session(client, user.bearer, browser[0], page)
    _use_vibe_session(client, user.token, user.bearer, vibe[0])
    fresh = client.post("/api/vibe/session/create", json={"name": "after", "language": "python"}, headers=user.bearer)
    assert fresh.status_code == 200 and owner_ordinal(fresh.json()["session_id"]) == 0, fresh.text
    _use_vibe_session(client, user.token, user.bearer, fresh.json()["session_id"])
    closed = client.delete(f"/api/browser/session/{browser[0]}", headers=user.bearer)
    assert closed.status_code == 200, closed.text


def test_every_service_still_answers_with_one_replica_of_each_killed(
    client: httpx.Client, replicas: Replicas, tmp_path: Path
) -> None:
    user = features.bearer(features.signup(client))
    # Killed mid-run: the first replicas of half the services, the second ones of the others
    # (unless the test above already took one: browser's and vibe's second replicas).
    for i, svc in enumerate(REPLICATED):
        alive = [o for o in (0, 1) if replicas.name(svc, o) in replicas.fleet.procs]
        if len(alive) == 2:
            replicas.kill(svc, alive[i % 2])
    # Each check twice: round-robin would hand every second request to a dead replica.
    for _ in range(2):
        features.check_research(client, user)
        features.check_voice_round_trip(client, user)
        features.check_browser(client, user, tmp_path)
        features.check_mcp_files(client, user)
        features.check_sandboxed_run(client, user)
        features.check_n8n_workflow(client, user, 120)
