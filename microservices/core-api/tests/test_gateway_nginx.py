"""nginx (rendered by nginx/render.py) in front of the gateway, over real sockets."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from gateway_support import BEARER, Fleet, ServerThread, close_at_once, free_port, raw_request
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

REPO = Path(__file__).resolve().parents[3]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# `fleet.py test unit` installs nginx before the unit tests run: its absence is a failure.
assert Path(NGINX).exists(), "nginx is not installed (python3 scripts/fleet.py setup installs it)"

sys.path.insert(0, str(REPO / "nginx"))
import render  # noqa: E402


class Nginx:
    def __init__(self, out: Path, core_api: str, frontend: str) -> None:
        self.port = free_port()
        self.conf = render.render(out, listen=f"127.0.0.1:{self.port}", core_api=core_api, frontend=frontend)
        check = subprocess.run([NGINX, "-t", "-c", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.access_log = out / "access.log"  # nginx logs requests to its stdout
        with self.access_log.open("wb") as log:
            self.proc = subprocess.Popen(
                [NGINX, "-c", str(self.conf), "-g", "daemon off;"], stdout=log, stderr=subprocess.PIPE
            )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with httpx.Client(trust_env=False) as c:
                    c.get(f"http://127.0.0.1:{self.port}/health", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, Nginx, Nginx]]:
    fleet = Fleet(close_at_once)
    dead = f"127.0.0.1:{free_port()}"
    front = Nginx(tmp_path_factory.mktemp("nginx"), f"127.0.0.1:{fleet.port}", dead)
    orphan = Nginx(tmp_path_factory.mktemp("nginx-no-core"), dead, dead)
    yield fleet, front, orphan
    front.stop()
    orphan.stop()
    fleet.stop()


def frontend_app() -> FastAPI:
    """A stand-in for the web front end's server: its chat bridge at /api/ai-chat answers a
    streamed echo of what reached it (or the route's own 400), every other path a page."""
    app = FastAPI()

    @app.post("/api/ai-chat", response_model=None)
    async def ai_chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        if not body.get("messages"):
            return JSONResponse({"error": "No messages provided"}, status_code=400)
        seen = {"path": request.url.path, "body": body, "headers": dict(request.headers)}

        async def parts() -> AsyncIterator[bytes]:
            yield b"2:" + orjson.dumps([seen]) + b"\n"
            for i in range(3):
                await asyncio.sleep(0.4)
                yield b'0:"chunk%d"\n' % i

        return StreamingResponse(parts(), media_type="text/plain; charset=utf-8")

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def page(path: str) -> dict[str, str]:
        return {"served_by": "frontend", "path": "/" + path}

    return app


@pytest.fixture(scope="module")
def with_frontend(stack: tuple[Fleet, Nginx, Nginx], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx in front of the same gateway, with a front end that runs."""
    frontend = ServerThread(frontend_app()).start()
    nginx = Nginx(tmp_path_factory.mktemp("nginx-frontend"), f"127.0.0.1:{stack[0].port}", f"127.0.0.1:{frontend.port}")
    yield nginx
    nginx.stop()
    frontend.stop()


@pytest.fixture
async def client(stack: tuple[Fleet, Nginx, Nginx]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack[1].url, trust_env=False, timeout=10) as c:
        yield c


async def test_identity_and_request_id_through_nginx(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers={**BEARER, "X-Request-ID": "rid-nginx"})
    assert r.status_code == 200
    assert r.json()["user_id"] == 7 and r.json()["request_id"] == "rid-nginx"
    assert r.headers.get_list("x-request-id") == ["rid-nginx"]


async def test_nginx_generates_a_request_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/research/diagnostics/whoami", headers=BEARER)
    assert len(r.headers["x-request-id"]) == 32 and r.json()["request_id"] == r.headers["x-request-id"]


async def test_forwarded_headers_through_nginx(client: httpx.AsyncClient, stack: tuple[Fleet, Nginx, Nginx]) -> None:
    r = await client.get("/api/tts/headers", headers=BEARER)
    sent = dict(r.json()["headers"])
    assert sent["x-forwarded-proto"] == "http"
    assert sent["x-forwarded-host"] == f"127.0.0.1:{stack[1].port}"
    assert sent["x-forwarded-for"].startswith("127.0.0.1")
    assert "authorization" not in sent


async def test_sse_is_not_buffered_by_nginx(client: httpx.AsyncClient) -> None:
    arrivals: list[float] = []
    start = time.monotonic()
    async with client.stream("GET", "/api/research/diagnostics/stream?count=3&interval_ms=400", headers=BEARER) as r:
        async for chunk in r.aiter_raw():
            arrivals.extend(time.monotonic() - start for _ in range(chunk.count(b"\n\n")))
    assert len(arrivals) == 4
    assert arrivals[0] < 0.4 and arrivals[2] - arrivals[0] > 0.6


async def test_health_and_api_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code in (200, 404)  # reaches core-api's app
    r = await client.get("/api/health")
    assert r.status_code == 200 and set(r.json()) == {"status", "checked_at"}  # public: nothing inside
    detailed = await client.get("/api/admin/health", headers={"Authorization": "Bearer tok-bob"})  # an admin
    assert detailed.status_code == 200 and detailed.json()["services"]["research-service"]["status"] == "ok"


async def test_frontend_absent_is_json_502(client: httpx.AsyncClient) -> None:
    r = await client.get("/", headers={"X-Request-ID": "rid-fe"})
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "rid-fe"
    body = r.json()
    assert body["detail"] and body["message"]


async def test_ai_chat_goes_to_the_front_end_and_streams(with_frontend: Nginx) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "mistral"}
    headers = {"Cookie": "access_token=tok-alice", "X-Request-ID": "rid-ai-chat"}
    arrivals: list[float] = []
    raw = b""
    async with httpx.AsyncClient(base_url=with_frontend.url, trust_env=False, timeout=10) as c:
        start = time.monotonic()
        async with c.stream("POST", "/api/ai-chat", json=body, headers=headers) as r:
            async for chunk in r.aiter_raw():
                arrivals.extend(time.monotonic() - start for _ in range(chunk.count(b"\n")))
                raw += chunk
    assert r.status_code == 200 and r.headers["x-request-id"] == "rid-ai-chat"
    lines = raw.decode().splitlines()
    seen = orjson.loads(lines[0][2:])[0]
    assert seen["path"] == "/api/ai-chat" and seen["body"] == body
    assert seen["headers"]["cookie"] == "access_token=tok-alice" and seen["headers"]["x-request-id"] == "rid-ai-chat"
    assert lines[1:] == ['0:"chunk0"', '0:"chunk1"', '0:"chunk2"']
    # Not buffered: the first part came at once, the others as they were written.
    assert len(arrivals) == 4 and arrivals[0] < 0.4 and arrivals[3] - arrivals[0] > 0.8


@pytest.mark.parametrize("path", ["/api/ai-chatx", "/api/ai-chat/x", "/api/ai-chat/"])
async def test_only_the_exact_ai_chat_path_goes_to_the_front_end(with_frontend: Nginx, path: str) -> None:
    async with httpx.AsyncClient(base_url=with_frontend.url, trust_env=False, timeout=10) as c:
        page = await c.get("/chat")
        r = await c.post(path, json={"messages": [{"role": "user", "content": "hi"}]}, headers=BEARER)
    assert page.json()["served_by"] == "frontend"  # the stand-in answers any path it gets
    assert r.status_code == 404 and "served_by" not in r.json()  # the gateway's own 404


async def test_front_end_errors_pass_through_unchanged(with_frontend: Nginx) -> None:
    async with httpx.AsyncClient(base_url=with_frontend.url, trust_env=False, timeout=10) as c:
        r = await c.post("/api/ai-chat", json={"messages": []})
    assert r.status_code == 400 and r.json() == {"error": "No messages provided"}  # not nginx's error page


async def test_ai_chat_without_the_front_end_is_json_502(client: httpx.AsyncClient) -> None:
    start = time.monotonic()
    r = await client.post("/api/ai-chat", json={"messages": []}, headers={"X-Request-ID": "rid-fe-chat"})
    assert time.monotonic() - start < 2
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert r.headers["x-request-id"] == "rid-fe-chat"
    assert set(r.json()) == {"detail", "message"} and "/api/ai-chat" in r.json()["detail"]


async def test_ai_chat_without_the_front_end_keeps_the_connection(stack: tuple[Fleet, Nginx, Nginx]) -> None:
    # The body arrives after the headers, as from a real client. nginx must read it before it
    # answers 502, or the next request on this kept-alive connection finds it closed.
    body = b'{"messages":[{"role":"user","content":"hi"}]}'
    reader, writer = await asyncio.open_connection("127.0.0.1", stack[1].port)
    try:
        writer.write(b"POST /api/ai-chat HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body))
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(body)
        await asyncio.sleep(0.2)
        writer.write(b"GET /api/local HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        answers = [await asyncio.wait_for(_read_response(reader), 5) for _ in range(2)]
    finally:
        writer.close()
    assert [status for status, _ in answers] == [502, 200]
    assert orjson.loads(answers[1][1]) == {"served_by": "core-api"}


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One Content-Length framed response from a kept-alive connection."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:"))
    return int(head[0].split()[1]), await reader.readexactly(length)


async def test_core_api_down_is_json_502(stack: tuple[Fleet, Nginx, Nginx]) -> None:
    async with httpx.AsyncClient(base_url=stack[2].url, trust_env=False) as c:
        r = await c.get("/api/auth/me")
    assert r.status_code == 502 and r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"detail", "message"}


async def test_too_large_body_is_json_413(stack: tuple[Fleet, Nginx, Nginx]) -> None:
    status, headers, body = await raw_request(
        stack[1].port,
        b"POST /api/stt/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok-alice\r\n"
        b"Content-Length: 200000000\r\n\r\n",
    )
    assert status == 413 and headers["content-type"] == "application/json"
    assert set(orjson.loads(body)) == {"detail", "message"}


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /api/audio/x.wav%00.png HTTP/1.1",  # a NUL in the path: nginx has no URI for it
        b"GET /api/mcp/tools HTTP/9.9",
        b"GARBAGE",
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1",  # too long: 414
    ],
)
async def test_malformed_requests_get_json_errors_not_500(
    stack: tuple[Fleet, Nginx, Nginx], request_line: bytes
) -> None:
    status, headers, body = await raw_request(stack[1].port, request_line + b"\r\nHost: t\r\n\r\n")
    assert status in (400, 414, 505), status
    if status != 505:  # nginx answers an unsupported HTTP version before any error_page applies
        assert headers["content-type"] == "application/json"
        assert set(orjson.loads(body)) == {"detail", "message"}


async def test_service_errors_pass_through_unchanged(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/mcp/tools", headers=BEARER)  # core-api's own JSON 503, not nginx's page
    assert r.status_code == 503 and r.json()["detail"] == "mcp-service is unavailable"


async def test_websocket_origin_check_through_nginx(stack: tuple[Fleet, Nginx, Nginx]) -> None:
    """nginx passes the browser's Host (with its port) on, so the page nginx served may use
    the cookie on a WebSocket and a page from anywhere else may not."""
    port = stack[1].port
    url = f"ws://127.0.0.1:{port}/api/vibecoding/container/s-1/terminal"
    cookie = {"Cookie": "access_token=tok-alice"}
    async with connect(url, additional_headers={**cookie, "Origin": f"http://127.0.0.1:{port}"}, proxy=None) as ws:
        assert orjson.loads(await ws.recv())["user_id"] == 7
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={**cookie, "Origin": "http://attacker.example"}, proxy=None):
            pass
    assert refused.value.response.status_code == 403


async def test_websocket_through_nginx(stack: tuple[Fleet, Nginx, Nginx]) -> None:
    url = f"ws://127.0.0.1:{stack[1].port}/api/vibecoding/container/s-1/terminal?token=tok-alice"
    async with connect(url, proxy=None) as ws:
        assert orjson.loads(await ws.recv())["user_id"] == 7
        await ws.send("pwd")
        assert await asyncio.wait_for(ws.recv(), 5) == "echo:pwd"
    # nginx logs the WebSocket when it closes: the token in its URL never reaches the log.
    deadline = time.monotonic() + 5
    while "/api/vibecoding/container/s-1/terminal" not in stack[1].access_log.read_text():
        assert time.monotonic() < deadline, stack[1].access_log.read_text()
        await asyncio.sleep(0.1)
    log = stack[1].access_log.read_text()
    assert "[redacted]" in log and "tok-alice" not in log
