"""Services with several replicas behind the gateway (core_api/gateway/replicas.py), over real
sockets: requests naming no session take turns and skip a replica that refuses connections;
requests naming a session (path, query, JSON body; WebSockets by path) go to the replica that
owns it, and to no other when it is gone (410, close 4410)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from gateway_support import (
    BEARER,
    TOKENS,
    FakeAuthenticator,
    ServerThread,
    free_port,
    gateway_app,
    gateway_settings,
    replica_app,
)
from prometheus_client import REGISTRY
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from core_api.gateway import replicas as replicas_module
from core_api.gateway.replicas import GONE, Replicas
from core_api.gateway.upstream import Endpoint, UpstreamPool, UpstreamUnavailable
from harvis_common.replicas import mint_session_id
from harvis_testkit import InternalAuthKit


class ReplicaFleet:
    """mcp-service: two replicas; n8n-integration: a dead one, then a live one; research-service:
    two dead ones; browser-service: two replicas; vibe-coding: two replicas and a dead third."""

    def __init__(self) -> None:
        self.kit = InternalAuthKit()
        self.servers: list[ServerThread] = []
        urls = {
            "mcp-service": ",".join(self._replicas("mcp-service", "mcp-0", "mcp-1")),
            "n8n-integration": ",".join([dead(), *self._replicas("n8n-integration", "n8n-1")]),
            "research-service": f"{dead()}, {dead()}",  # spaces around the comma are fine
            "browser-service": ",".join(self._replicas("browser-service", "browser-0", "browser-1")),
            "vibe-coding": ",".join([*self._replicas("vibe-coding", "vibe-0", "vibe-1"), dead()]),
        }
        self.settings = gateway_settings(urls)
        self.gateway = gateway_app(self.settings, FakeAuthenticator(TOKENS), self.kit)
        self.server = ServerThread(self.gateway).start()

    def _replicas(self, service: str, *names: str) -> list[str]:
        started = [ServerThread(replica_app(self.kit, service, name)).start() for name in names]
        self.servers += started
        return [s.url for s in started]

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        for server in (self.server, *self.servers):
            server.stop()


def dead() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[ReplicaFleet]:
    fleet = ReplicaFleet()
    yield fleet
    fleet.stop()


@pytest.fixture
async def client(fleet: ReplicaFleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False, timeout=10, headers=BEARER) as c:
        yield c


def failures(service: str) -> float:
    return REGISTRY.get_sample_value("harvis_gateway_upstream_connect_failures_total", {"upstream": service}) or 0.0


async def replica(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> str:
    r = await client.request(method, path, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()["replica"]


# ---------------------------------------------------------------- balanced


async def test_requests_naming_no_session_take_turns(client: httpx.AsyncClient, fleet: ReplicaFleet) -> None:
    seen = [await replica(client, "GET", "/api/mcp/tools") for _ in range(6)]
    assert set(seen) == {"mcp-0", "mcp-1"}
    assert all(a != b for a, b in itertools.pairwise(seen)), seen  # in turn
    # Each replica gets its own Host (a StatefulSet pod's name, say).
    r = await client.get("/api/mcp/tools")
    assert r.json()["host"] in {s.url.removeprefix("http://") for s in fleet.servers}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_a_replica_refusing_connections_is_skipped_for_every_method(
    client: httpx.AsyncClient, method: str
) -> None:
    """Nothing reached the refusing replica, so any request may go on to the next one."""
    body = b'{"workflow": "w-1"}' if method in ("POST", "PUT", "PATCH") else None
    for _ in range(3):
        r = await client.request(method, "/api/n8n/workflows", content=body)
        assert r.status_code == 200, r.text
        assert r.json()["replica"] == "n8n-1" and r.json()["method"] == method
        assert bytes.fromhex(r.json()["body"]) == (body or b"")


async def test_all_replicas_down_is_503(client: httpx.AsyncClient) -> None:
    before = failures("research-service")
    for method in ("GET", "POST"):
        r = await client.request(method, "/api/research/x", json={"q": 1} if method == "POST" else None)
        assert r.status_code == 503
        assert r.json()["detail"] == "research-service is unavailable" and r.headers["x-request-id"]
    assert failures("research-service") > before


async def test_a_refusing_replica_sits_out_a_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that refused is not tried again for BACKOFF_S (one failure counted, not one per
    request); then it gets its turn again. When all sit out, one is tried all the same."""
    monkeypatch.setattr(replicas_module, "BACKOFF_S", 0.3)
    live = ServerThread(replica_app(InternalAuthKit(), "voice-service", "live")).start()
    urls = [dead(), live.url]
    pools = [UpstreamPool(Endpoint.from_url("voice-service", u), connect_timeout=0.5, max_connections=4) for u in urls]
    service = Replicas("voice-service", pools)

    async def take() -> UpstreamPool:
        pool, conn = await service.acquire()
        conn.abort()
        pool.release(conn)
        return pool

    try:
        before = failures("voice-service")
        for _ in range(6):
            assert await take() is pools[1]
        assert failures("voice-service") == before + 1
        await asyncio.sleep(0.35)
        await take()  # the live one's turn, or the dead one's: then the live one
        await take()  # ... and the other one's: the dead one has been tried once more
        assert failures("voice-service") == before + 2
        live.stop()
        await asyncio.sleep(0.35)
        with pytest.raises(UpstreamUnavailable):
            await service.acquire()
        assert failures("voice-service") == before + 4
        with pytest.raises(UpstreamUnavailable):  # both sit out: still one attempt
            await service.acquire()
        assert failures("voice-service") == before + 5
    finally:
        await service.close()
        live.stop()


# ---------------------------------------------------------------- pinned to the session's replica


@pytest.mark.parametrize("owner", [0, 1])
async def test_a_session_named_in_the_path_goes_to_its_replica(client: httpx.AsyncClient, owner: int) -> None:
    sid = mint_session_id(owner)
    for method in ("GET", "GET", "DELETE", "GET"):
        assert await replica(client, method, f"/api/browser/session/{sid}") == f"browser-{owner}"
    vibe = [await replica(client, "GET", f"/api/vibe/files/{sid}/read?path=a.py") for _ in range(3)]
    assert vibe == [f"vibe-{owner}"] * 3


async def test_a_session_named_in_the_query_goes_to_its_replica(client: httpx.AsyncClient) -> None:
    sid = mint_session_id(1)
    for _ in range(3):
        assert await replica(client, "GET", f"/api/browser/screenshot?full_page=true&session_id={sid}") == "browser-1"


async def test_a_session_named_in_the_json_body_goes_to_its_replica_with_the_body_as_sent(
    client: httpx.AsyncClient,
) -> None:
    sid = mint_session_id(1)
    # Odd spacing, escapes and non-ASCII: the service gets these bytes, not a re-encoding.
    text = '{ "url" : "https://example.com/\\u00e9?q=1",\n  "session_id":"SID", "note": "héllo" }'
    body = text.replace("SID", sid).encode()
    for path in ("/api/browser/navigate", "/api/browser/interact", "/api/screen-analyze"):
        for _ in range(2):
            r = await client.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"})
            assert r.status_code == 200 and r.json()["replica"] == "browser-1", r.text
            assert bytes.fromhex(r.json()["body"]) == body
    for path in ("/api/vibe/execute", "/api/vibe/ai/propose", "/api/vibe/ai/apply"):
        assert await replica(client, "POST", path, json={"session_id": sid, "code": "print(1)"}) == "vibe-1"


@pytest.mark.parametrize(
    "body",
    [
        b'{"url": "https://example.com"}',  # no session: a new one, anywhere
        b'{"session_id": 42}',  # not a string: the service says 422
        b'{"session_id": "%s"' % mint_session_id(1).encode(),  # not JSON (cut short): not parsed
        b'["session_id"]',
    ],
)
async def test_a_json_body_naming_no_session_is_balanced_and_forwarded_as_is(
    client: httpx.AsyncClient, body: bytes
) -> None:
    seen = set()
    for _ in range(4):
        r = await client.post("/api/browser/navigate", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200 and bytes.fromhex(r.json()["body"]) == body
        seen.add(r.json()["replica"])
    assert seen == {"browser-0", "browser-1"}


async def test_a_large_or_non_json_body_is_not_read_for_a_session(client: httpx.AsyncClient) -> None:
    """Only a small JSON body is held to look for the session: an upload streams through."""
    sid = mint_session_id(1)
    large = orjson.dumps({"session_id": sid, "image": "A" * (64 * 1024)})
    seen = set()
    for _ in range(4):
        r = await client.post("/api/screen-analyze", content=large, headers={"content-type": "application/json"})
        assert r.status_code == 200 and bytes.fromhex(r.json()["body"]) == large
        seen.add(r.json()["replica"])
        r = await client.post("/api/browser/navigate", content=b'{"session_id": "%s"}' % sid.encode())  # no type
        seen.add(r.json()["replica"])
    assert seen == {"browser-0", "browser-1"}


async def test_an_id_that_is_not_a_uuid_is_balanced(client: httpx.AsyncClient) -> None:
    """The service answers it as it always did (its own 404): any replica can."""
    seen = {await replica(client, "GET", "/api/browser/session/not-a-uuid") for _ in range(4)}
    assert seen == {"browser-0", "browser-1"}
    seen = {await replica(client, "POST", "/api/vibe/session/create", json={"name": "x"}) for _ in range(4)}
    assert seen == {"vibe-0", "vibe-1"}  # the template's {session_id} is "create" here


async def test_a_session_from_before_replicas_belongs_to_replica_0(client: httpx.AsyncClient) -> None:
    sid = str(uuid.uuid4())
    assert {await replica(client, "GET", f"/api/browser/session/{sid}") for _ in range(4)} == {"browser-0"}


async def test_a_session_past_the_replicas_is_gone_410(client: httpx.AsyncClient) -> None:
    sid = mint_session_id(5)
    answers = [
        await client.get(f"/api/browser/session/{sid}"),
        await client.get(f"/api/browser/screenshot?session_id={sid}"),
        await client.post("/api/browser/interact", json={"session_id": sid, "action": "back"}),
    ]
    for r in answers:
        assert r.status_code == 410, r.text
        assert r.json() == {"detail": GONE, "message": GONE} and r.headers["x-request-id"]


async def test_a_session_whose_replica_is_down_is_gone_410_not_another_replicas(client: httpx.AsyncClient) -> None:
    sid = mint_session_id(2)  # vibe-coding's third replica refuses connections
    before = failures("vibe-coding")
    for r in (
        await client.get(f"/api/vibe/session/{sid}"),
        await client.post("/api/vibe/execute", json={"session_id": sid, "code": "1"}),
        await client.get(f"/api/vibe/files/{sid}/tree"),
    ):
        assert r.status_code == 410, r.text
        assert r.json()["detail"] == GONE
    assert failures("vibe-coding") == before + 3  # the owner is tried every time, back-off or not
    # Requests naming no session still find a live replica.
    assert {await replica(client, "GET", "/api/vibe/sessions") for _ in range(4)} == {"vibe-0", "vibe-1"}


# ---------------------------------------------------------------- WebSockets


def terminal(fleet: ReplicaFleet, session_id: str) -> str:
    return f"ws://127.0.0.1:{fleet.server.port}/api/vibecoding/container/{session_id}/terminal?token=tok-alice"


@pytest.mark.parametrize("owner", [0, 1])
async def test_a_terminal_goes_to_its_sessions_replica(fleet: ReplicaFleet, owner: int) -> None:
    sid = mint_session_id(owner)
    for _ in range(3):
        async with connect(terminal(fleet, sid), proxy=None) as ws:
            assert orjson.loads(await ws.recv()) == {"replica": f"vibe-{owner}", "session_id": sid}


async def test_a_terminal_naming_no_session_skips_a_refusing_replica(fleet: ReplicaFleet) -> None:
    seen = set()
    for _ in range(6):
        async with connect(terminal(fleet, "s-42"), proxy=None) as ws:
            seen.add(orjson.loads(await ws.recv())["replica"])
    assert seen == {"vibe-0", "vibe-1"}


@pytest.mark.parametrize("owner", [2, 9])  # down; past the list
async def test_a_terminal_whose_replica_is_gone_closes_4410(fleet: ReplicaFleet, owner: int) -> None:
    async with connect(terminal(fleet, mint_session_id(owner)), proxy=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4410, GONE)


# ---------------------------------------------------------------- health


async def test_health_lists_every_replica_and_a_service_is_ok_while_one_is(fleet: ReplicaFleet) -> None:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False) as c:
        body = (await c.get("/api/admin/health", headers={"Authorization": "Bearer tok-bob"})).json()
        public = (await c.get("/api/health")).json()
    services = body["services"]
    mcp = services["mcp-service"]
    assert mcp["status"] == "ok" and [r["status"] for r in mcp["replicas"]] == ["ok", "ok"]
    assert [r["ordinal"] for r in mcp["replicas"]] == [0, 1] and all(r["url"] for r in mcp["replicas"])
    n8n = services["n8n-integration"]  # one of two down: the service is ok, the fleet degraded
    assert n8n["status"] == "ok" and [r["status"] for r in n8n["replicas"]] == ["down", "ok"]
    assert n8n["url"] == n8n["replicas"][1]["url"]  # the entry is the live replica's check
    assert services["vibe-coding"]["status"] == "ok"
    assert [r["status"] for r in services["vibe-coding"]["replicas"]] == ["ok", "ok", "down"]
    research = services["research-service"]
    assert research["status"] == "down" and len(research["replicas"]) == 2
    assert body["status"] == public["status"] == "degraded"


# ---------------------------------------------------------------- settings


def test_a_url_setting_lists_replicas_in_ordinal_order(fleet: ReplicaFleet) -> None:
    replicas = fleet.gateway.replicas
    assert [len(replicas[s]) for s in ("mcp-service", "research-service", "vibe-coding", "voice-service")] == [
        2,
        2,
        3,
        1,
    ]
    assert [p.endpoint.url for p in replicas["mcp-service"].pools] == fleet.settings.mcp_service_url.split(",")
    # One replica: today's path, nothing parsed for sessions; several: the manifest's [sessions].
    assert replicas["voice-service"].single and replicas["mcp-service"].sessions is None
    assert replicas["browser-service"].sessions is not None


@pytest.mark.parametrize("value", ["http://a:1,,http://b:1", "http://a:1,", " , http://a:1"])
def test_an_empty_entry_in_a_replica_list_is_refused(value: str) -> None:
    """A stray comma would shift every ordinal after it, and with it which replica owns a session."""
    with pytest.raises(ValidationError, match="one base URL per replica"):
        gateway_settings({"browser-service": value})
