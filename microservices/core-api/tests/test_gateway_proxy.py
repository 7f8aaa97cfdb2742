"""The gateway end to end over real sockets: auth, identity, headers, errors, bodies."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from gateway_support import BEARER, Fleet, raw_request

from harvis_common.logging import JsonFormatter

RESPONSES = {
    b"/api/browser/hop": [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b"Connection: keep-alive, X-Hop-Resp\r\nX-Hop-Resp: secret\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic\r\nX-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
        b'{"ok":true}'
    ],
    b"/api/browser/chunked": [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        b"1\r\n \r\n",
        b"5\r\nworld\r\n0\r\n\r\n",
    ],
    b"/api/browser/until-close": [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        b"body until ",
        b"the end",
        b"<close>",
    ],
    b"/api/browser/garbage": [b"NOT HTTP AT ALL\r\n\r\n", b"<close>"],
    b"/api/browser/drop": [b"<close>"],
}


async def respond(head: bytes) -> list[bytes]:
    target = head.split(b" ", 2)[1].split(b"?")[0]
    return RESPONSES.get(target, [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"])


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    fleet = Fleet(respond)
    yield fleet
    fleet.stop()


@pytest.fixture
async def client(fleet: Fleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.url, trust_env=False, timeout=10) as c:
        yield c


def as_dict(pairs: list[list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


# ---------------------------------------------------------------- identity and auth


async def test_identity_and_request_id_reach_the_service(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers={**BEARER, "X-Request-ID": "rid-123"})
    assert r.status_code == 200
    body = r.json()
    assert body["service"] == "research-service"
    assert (body["user_id"], body["email"], body["username"]) == (7, "alice@example.com", "alice")
    assert body["is_admin"] is False
    assert body["request_id"] == "rid-123"
    assert r.headers["x-request-id"] == "rid-123"
    assert r.headers.get_list("x-request-id") == ["rid-123"]  # not doubled by the service's own


async def test_request_id_is_generated_when_missing_or_unsafe(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers=BEARER)
    rid = r.headers["x-request-id"]
    assert len(rid) >= 16 and r.json()["request_id"] == rid
    r = await client.get("/api/research/diagnostics/whoami", headers={**BEARER, "X-Request-ID": "bad id<script>"})
    assert r.headers["x-request-id"] != "bad id<script>"
    assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_cookie_auth_works(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers={"Cookie": "access_token=tok-bob"})
    assert r.status_code == 200
    assert r.json()["user_id"] == 8 and r.json()["is_admin"] is True


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Cookie": "access_token=nope"}, {"Authorization": "Basic dG9r"}],
)
async def test_no_or_bad_token_is_401_json(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers={**headers, "X-Request-ID": "rid-401"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "rid-401"
    assert r.json() == {"detail": "Could not validate credentials", "message": "Could not validate credentials"}


async def test_forged_internal_auth_is_replaced(client: httpx.AsyncClient, fleet: Fleet) -> None:
    forged = fleet.kit.headers("voice-service", user_id=999, email="evil@example.com")["X-Internal-Auth"]
    r = await client.get("/api/tts/headers", headers={**BEARER, "X-Internal-Auth": forged})
    assert r.status_code == 200
    body = r.json()
    assert body["identity"]["user_id"] == 7
    sent = as_dict(body["headers"])
    assert len(sent["x-internal-auth"]) == 1 and sent["x-internal-auth"][0] != forged


async def test_user_credentials_are_not_forwarded(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/tts/headers",
        headers={**BEARER, "Cookie": "theme=dark; access_token=tok-alice; lang=en", "X-Custom": "kept"},
    )
    sent = as_dict(r.json()["headers"])
    assert "authorization" not in sent
    assert sent["cookie"] == ["theme=dark; lang=en"]
    assert sent["x-custom"] == ["kept"]
    assert "tok-alice" not in str(sent)


async def test_forwarding_headers(client: httpx.AsyncClient, fleet: Fleet) -> None:
    r = await client.get(
        "/api/tts/headers?a=1&b=two",
        headers={**BEARER, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "Host": "harvis.test:9000"},
    )
    body = r.json()
    sent = as_dict(body["headers"])
    assert body["query"] == "a=1&b=two"
    assert sent["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"] or sent["x-forwarded-for"] == ["203.0.113.9"]
    assert sent["x-forwarded-proto"] == ["https"]
    assert sent["x-forwarded-host"] == ["harvis.test:9000"]
    assert sent["host"] == [f"127.0.0.1:{fleet.voice.port}"]


async def test_request_hop_by_hop_headers_are_stripped(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/tts/headers",
        content=b"{}",
        headers={
            **BEARER,
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eA==",
            "X-End-To-End": "yes",
        },
    )
    sent = as_dict(r.json()["headers"])
    for name in ("x-hop", "keep-alive", "te", "proxy-authorization"):
        assert name not in sent
    assert sent["x-end-to-end"] == ["yes"]


async def test_response_hop_by_hop_headers_are_stripped(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/browser/hop", headers=BEARER)
    assert r.status_code == 200 and r.content == b'{"ok":true}'
    assert r.headers["x-kept"] == "yes"
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    for name in ("x-hop-resp", "keep-alive", "proxy-authenticate"):
        assert name not in r.headers


# ---------------------------------------------------------------- routing and errors


async def test_prefix_boundary(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/tts")).status_code == 401  # proxied: needs a token
    assert (await client.get("/api/tts/anything")).status_code == 401
    r = await client.get("/api/ttsx", headers=BEARER)  # not a prefix: core-api's own 404
    assert r.status_code == 404 and "x-request-id" in r.headers
    assert (await client.get("/api/local")).json() == {"served_by": "core-api"}


@pytest.mark.parametrize(
    "target",
    [b"/api/tts/../auth/me", b"/api/tts/%2e%2e/auth/me", b"/api/tts/%2E%2e/x", b"/api/tts/..%2f..%2fetc", b"/api/.."],
)
async def test_dot_dot_is_400(fleet: Fleet, target: bytes) -> None:
    status, headers, body = await raw_request(
        fleet.port, b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-alice\r\n\r\n"
    )
    assert status == 400
    assert headers["content-type"] == "application/json" and "x-request-id" in headers
    assert b'"detail"' in body and b'"message"' in body


async def test_service_down_is_fast_503_and_other_prefixes_still_work(client: httpx.AsyncClient) -> None:
    start = time.perf_counter()
    r = await client.get("/api/mcp/tools", headers={**BEARER, "X-Request-ID": "rid-503"})
    assert time.perf_counter() - start < 1.0
    assert r.status_code == 503
    assert r.json()["detail"] == "mcp-service is unavailable" and r.json()["message"]
    assert r.headers["x-request-id"] == "rid-503"
    assert (await client.get("/api/research/diagnostics/whoami", headers=BEARER)).status_code == 200


async def test_slow_service_is_504(client: httpx.AsyncClient) -> None:
    start = time.perf_counter()
    r = await client.get("/api/audio/slow?delay=3", headers=BEARER)
    elapsed = time.perf_counter() - start
    assert r.status_code == 504
    assert r.json()["detail"] == "voice-service did not answer in time"
    assert 0.9 < elapsed < 2.5  # the test settings' read timeout is 1 s


async def test_garbage_is_502_and_dropped_connection_is_503(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/browser/garbage", headers=BEARER)
    assert r.status_code == 502 and r.json()["detail"] == "browser-service sent an invalid response"
    r = await client.get("/api/browser/drop", headers=BEARER)
    assert r.status_code in (502, 503) and "detail" in r.json()


async def test_a_service_killed_under_a_kept_alive_connection_is_503(client: httpx.AsyncClient) -> None:
    """make dev's crash test saw this: a POST with a body goes out on a connection the service
    had kept alive, and the service (killed) drops it without a byte. It can't be replayed (the
    body is gone), but it is the service being down (503, retry later), not garbage (502)."""
    assert (await client.get("/api/browser/hop", headers=BEARER)).status_code == 200  # kept alive
    r = await client.post("/api/browser/drop", json={"query": "x"}, headers=BEARER)
    assert r.status_code == 503 and r.json()["detail"] == "browser-service is unavailable", r.text


async def test_chunked_and_close_delimited_responses(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/browser/chunked", headers=BEARER)
    assert r.status_code == 200 and r.text == "hello world"
    r = await client.get("/api/browser/until-close", headers=BEARER)
    assert r.status_code == 200 and r.text == "body until the end"


async def test_connections_are_kept_alive_and_reused(client: httpx.AsyncClient, fleet: Fleet) -> None:
    for _ in range(30):
        r = await client.get("/api/research/diagnostics/whoami", headers=BEARER)
        assert r.status_code == 200
    pool = fleet.gateway.replicas["research-service"].first
    assert pool.open_connections <= 2
    # Concurrency opens more, then they are all reused.
    results = await asyncio.gather(*(client.get("/api/research/diagnostics/whoami", headers=BEARER) for _ in range(20)))
    assert all(r.status_code == 200 for r in results)
    assert pool.idle_connections == pool.open_connections


async def test_head_request(client: httpx.AsyncClient) -> None:
    r = await client.head("/api/audio/big?size=1000", headers=BEARER)
    assert r.status_code in (200, 405)
    assert r.content == b""
    assert (await client.get("/api/audio/big?size=1000", headers=BEARER)).content[:16] == b"0123456789abcdef"


# ---------------------------------------------------------------- bodies


async def test_large_streamed_upload_arrives_intact(client: httpx.AsyncClient) -> None:
    size = 20 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(size // len(block)):
        digest.update(block)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
        for _ in range(size // len(block)):
            yield block

    r = await client.post("/api/stt/upload", content=chunks(), headers=BEARER, timeout=60)
    assert r.status_code == 200
    assert r.json() == {"size": size, "sha256": digest.hexdigest()}

    body = block * 20  # with Content-Length
    r = await client.post("/api/stt/upload", content=body, headers=BEARER, timeout=60)
    assert r.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def test_service_answering_before_the_upload_ends(client: httpx.AsyncClient) -> None:
    block = b"z" * (1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield block

    start = time.perf_counter()
    r = await client.post("/api/stt/reject", content=chunks(), headers=BEARER)
    assert r.status_code == 413 and r.json()["detail"] == "too large"
    assert time.perf_counter() - start < 5
    assert (await client.get("/api/tts/headers", headers=BEARER)).status_code == 200


async def test_upload_is_streamed_not_buffered(client: httpx.AsyncClient, fleet: Fleet) -> None:
    fleet.echo_state.upload_first_chunk_at = None
    last_sent_at: list[float] = []

    async def slow_chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 65536
            await asyncio.sleep(0.2)
        last_sent_at.append(time.monotonic())

    r = await client.post("/api/stt/upload", content=slow_chunks(), headers=BEARER)
    assert r.json()["size"] == 5 * 65536
    first = fleet.echo_state.upload_first_chunk_at
    assert first is not None and first < last_sent_at[0] - 0.5  # the service read while we were still sending


async def test_large_download_streams_intact(client: httpx.AsyncClient) -> None:
    size = 5_000_000
    async with client.stream("GET", f"/api/audio/big?size={size}", headers=BEARER) as r:
        assert r.headers["content-length"] == str(size)
        received = 0
        chunks = 0
        async for chunk in r.aiter_raw():
            received += len(chunk)
            chunks += 1
    assert received == size and chunks > 1


async def test_sse_events_arrive_as_sent(client: httpx.AsyncClient) -> None:
    arrivals: list[tuple[float, bytes]] = []
    start = time.monotonic()
    url = "/api/research/diagnostics/stream?count=4&interval_ms=300"
    async with client.stream("GET", url, headers={**BEARER, "Accept": "text/event-stream"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in r.headers
        buffer = b""
        async for chunk in r.aiter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                arrivals.append((time.monotonic() - start, event))
    assert len(arrivals) == 5  # 4 streaming + complete
    assert all(event.startswith(b"data: {") for _, event in arrivals)
    times = [t for t, _ in arrivals]
    # The first event is here long before the last is even sent (≥ 0.9 s later).
    assert times[3] - times[0] > 0.7
    gaps = [b - a for a, b in itertools.pairwise(times[:4])]
    assert all(gap > 0.15 for gap in gaps), gaps


async def test_client_disconnect_cancels_the_upstream_stream(fleet: Fleet) -> None:
    fleet.echo_state.stream_cancelled.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", fleet.port)
    writer.write(b"GET /api/voice/endless HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-alice\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 200 " in head.split(b"\r\n")[0]
    await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)  # one event arrived
    writer.close()
    # A threading.Event set by the service's thread: wait for it off the loop.
    assert await asyncio.to_thread(fleet.echo_state.stream_cancelled.wait, 3)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("core-api"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Formatted in the gateway's thread, where the request id is bound.
        self.lines.append(orjson.loads(self.format(record)))


async def test_access_log_line_carries_request_id_and_fields(client: httpx.AsyncClient) -> None:
    handler = _Lines()
    access = logging.getLogger("harvis.access")
    access.addHandler(handler)
    try:
        await client.get("/api/research/diagnostics/whoami", headers={**BEARER, "X-Request-ID": "rid-log"})
        await client.get("/api/mcp/tools", headers={**BEARER, "X-Request-ID": "rid-log-503"})
    finally:
        access.removeHandler(handler)
    mine = [line for line in handler.lines if line.get("upstream")]
    assert len(mine) == 2, handler.lines
    ok, down = mine
    assert ok["request_id"] == "rid-log" and ok["path"] == "/api/research/diagnostics/whoami"
    assert (ok["method"], ok["status"], ok["user_id"], ok["upstream"]) == ("GET", 200, 7, "research-service")
    assert isinstance(ok["duration_ms"], float)
    assert (down["request_id"], down["status"], down["upstream"]) == ("rid-log-503", 503, "mcp-service")
