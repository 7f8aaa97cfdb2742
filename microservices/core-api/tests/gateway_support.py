"""Real servers on real sockets for the gateway tests.

Each server (a service app, the gateway, a raw TCP responder) runs in its own
thread with its own event loop, on a port the OS picked, so the tests talk to
them exactly as nginx and the services would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse

from core_api.api.routes.health import health_overview_router
from core_api.auth.context import AuthUser
from core_api.gateway import Gateway
from core_api.gateway.openapi import FleetOpenAPI, openapi_router
from core_api.settings import Settings
from harvis_common.app import create_service_app
from harvis_common.config import ServiceSettings
from harvis_common.diagnostics import sse_event
from harvis_common.errors import install_error_handlers
from harvis_common.identity import current_identity
from harvis_testkit import InternalAuthKit

MICRO = Path(__file__).resolve().parents[2]
if str(MICRO / "research-service") not in sys.path:
    sys.path.insert(0, str(MICRO / "research-service"))

ALICE = AuthUser(id=7, email="alice@example.com", username="alice", is_admin=False, jti="j-alice", exp=2**31)
BOB = AuthUser(id=8, email="bob@example.com", username="bob", is_admin=True, jti="j-bob", exp=2**31)


class FakeAuthenticator:
    """Maps known tokens to users, like AuthService would after checking them."""

    def __init__(self, users: dict[str, AuthUser]) -> None:
        self.users = users
        self.calls = 0

    async def authenticate(self, token: str) -> AuthUser | None:
        self.calls += 1
        return self.users.get(token)


def free_port() -> int:
    """A port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class ServerThread:
    """An ASGI app under uvicorn in a background thread."""

    def __init__(self, app: Any, **config: Any) -> None:
        self.sock = _bound_socket()
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, lifespan="on", log_level="warning", timeout_graceful_shutdown=1, **config)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


class RawServer:
    """A TCP server answering every request with canned bytes (for framing and
    header cases no well-behaved framework would produce)."""

    def __init__(self, respond: Callable[[bytes], Awaitable[list[bytes]]]) -> None:
        self.respond = respond
        self.port = 0
        self.requests: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                for part in await self.respond(head):
                    if part == b"<close>":
                        writer.close()
                        return
                    writer.write(part)
                    await writer.drain()
        writer.close()

    def start(self) -> RawServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


# ---------------------------------------------------------------- apps


def gateway_settings(urls: dict[str, str], **overrides: Any) -> Settings:
    """Settings pointing every service at `urls` (missing ones at a dead port)."""
    dead = f"http://127.0.0.1:{free_port()}"
    fields = {
        "research-service": "research_service_url",
        "voice-service": "voice_service_url",
        "browser-service": "browser_service_url",
        "mcp-service": "mcp_service_url",
        "n8n-integration": "n8n_integration_url",
        "vibe-coding": "vibe_coding_url",
    }
    values: dict[str, Any] = {field: urls.get(name, dead) for name, field in fields.items()}
    values.update(
        gateway_connect_timeout_s=0.5,
        gateway_read_timeout_s=1.0,
        gateway_stream_timeout_s=30.0,
        health_cache_s=0.5,
        jwt_secret="x" * 32,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


def gateway_app(settings: Settings, authenticator: Any, kit: InternalAuthKit) -> Gateway:
    """The gateway wrapped around a FastAPI app, wired like core_api.app.create_app does."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.auth = authenticator  # core-api's own routes (the admin health view) ask it too
        gateway.attach(authenticator, kit.signer)
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    api = FastAPI(lifespan=lifespan)
    install_error_handlers(api)

    @api.get("/api/local")
    async def local() -> dict[str, str]:
        return {"served_by": "core-api"}

    gateway = Gateway(api, settings)
    api.include_router(health_overview_router(gateway))
    api.include_router(openapi_router(FleetOpenAPI(api, gateway)))
    return gateway


def research_app(kit: InternalAuthKit) -> FastAPI:
    from research_service.settings import Settings as ResearchSettings

    settings = ResearchSettings(_env_file=None, internal_auth_public_key=kit.public_key)
    return create_service_app(settings, title="research (test)", description="", slug="research")


class HitCounter:
    """Counts the requests an app gets for one path (an ASGI wrapper, thread-safe enough for
    CPython's atomic int updates under the GIL)."""

    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path, self.hits = app, path, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            self.hits += 1
        await self.app(scope, receive, send)


class EchoState:
    """What the echo service saw, shared with the test thread."""

    def __init__(self) -> None:
        self.upload_first_chunk_at: float | None = None
        self.stream_cancelled = threading.Event()


def echo_app(kit: InternalAuthKit, state: EchoState, service: str = "voice-service") -> FastAPI:
    """A test service (verifying internal auth like every real one) with echo endpoints."""
    router = APIRouter()

    @router.post("/api/stt/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        async for chunk in request.stream():
            if chunk and state.upload_first_chunk_at is None:
                state.upload_first_chunk_at = time.monotonic()
            digest.update(chunk)
            size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @router.post("/api/stt/reject")
    async def reject() -> JSONResponse:  # answers without reading the upload
        return JSONResponse({"detail": "too large", "message": "too large"}, status_code=413)

    @router.api_route("/api/tts/headers", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def headers(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
            "identity": current_identity(request).as_dict(),
        }

    @router.get("/api/audio/slow")
    async def slow(delay: float = 3.0) -> dict[str, str]:
        await asyncio.sleep(delay)
        return {"status": "late"}

    @router.get("/api/audio/big")
    async def big(size: int = Query(5_000_000)) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            block = b"0123456789abcdef" * 4096  # 64 KiB
            sent = 0
            while sent < size:
                piece = block[: size - sent]
                sent += len(piece)
                yield piece

        return StreamingResponse(body(), media_type="application/octet-stream", headers={"content-length": str(size)})

    @router.get("/api/voice/endless")
    async def endless() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            try:
                for i in range(1000):
                    yield sse_event({"status": "streaming", "seq": i})
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                state.stream_cancelled.set()
                raise
            finally:
                state.stream_cancelled.set()

        return StreamingResponse(events(), media_type="text/event-stream")

    settings = ServiceSettings(_env_file=None, service_name=service, internal_auth_public_key=kit.public_key)
    return create_service_app(settings, title="echo (test)", description="", slug="voice", routers=[router])


def terminal_app(kit: InternalAuthKit) -> FastAPI:
    """A vibe-coding stand-in with the contract's terminal WebSocket, echoing."""
    router = APIRouter()

    @router.websocket("/api/vibecoding/container/{session_id}/terminal")
    async def terminal(websocket: WebSocket, session_id: str) -> None:
        identity = websocket.scope["state"]["identity"]
        await websocket.accept(subprotocol=(websocket.scope.get("subprotocols") or [None])[0])
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in websocket.scope["headers"]}
        await websocket.send_json(
            {
                "session_id": session_id,
                "user_id": identity.user_id,
                "query": websocket.scope["query_string"].decode(),
                "has_authorization": "authorization" in headers,
                "cookie": headers.get("cookie", ""),
            }
        )
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "close-please":
                    await websocket.close(code=4321, reason="asked to")
                    return
                if message.get("text") is not None:
                    await websocket.send_text("echo:" + message["text"])
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect:
            return

    settings = ServiceSettings(_env_file=None, service_name="vibe-coding", internal_auth_public_key=kit.public_key)
    return create_service_app(settings, title="vibe (test)", description="", slug="vibe", routers=[router])


def replica_app(kit: InternalAuthKit, service: str, name: str) -> FastAPI:
    """One replica of `service`, answering every /api request with its own `name` and what it
    got (the body as hex, to compare byte for byte); its terminal WebSocket says the same."""
    router = APIRouter()

    @router.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def anything(request: Request, rest: str) -> dict[str, Any]:
        return {
            "replica": name,
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "host": request.headers.get("host"),
            "body": (await request.body()).hex(),
        }

    @router.websocket("/api/vibecoding/container/{session_id}/terminal")
    async def terminal(websocket: WebSocket, session_id: str) -> None:
        await websocket.accept()
        await websocket.send_json({"replica": name, "session_id": session_id})
        await websocket.close()

    settings = ServiceSettings(_env_file=None, service_name=service, internal_auth_public_key=kit.public_key)
    return create_service_app(settings, title=f"{name} (test)", description="", slug="replica", routers=[router])


async def close_at_once(_: bytes) -> list[bytes]:
    """A raw responder that closes every connection unanswered (a service that is "down")."""
    return [b"<close>"]


# ---------------------------------------------------------------- the whole test fleet

TOKENS = {"tok-alice": ALICE, "tok-bob": BOB}
BEARER = {"Authorization": "Bearer tok-alice"}


class Fleet:
    """The gateway in front of: research (real app), voice (echo), vibe-coding
    (terminal WebSocket), browser (raw responder); mcp and n8n are down."""

    def __init__(self, raw_respond: Callable[[bytes], Awaitable[list[bytes]]], **overrides: Any) -> None:
        self.kit = InternalAuthKit()
        self.echo_state = EchoState()
        self.research_app = HitCounter(research_app(self.kit), "/health")
        self.research = ServerThread(self.research_app).start()
        self.voice = ServerThread(echo_app(self.kit, self.echo_state)).start()
        self.vibe = ServerThread(terminal_app(self.kit)).start()
        self.browser = RawServer(raw_respond).start()
        self.authenticator = FakeAuthenticator(TOKENS)
        self.settings = gateway_settings(
            {
                "research-service": self.research.url,
                "voice-service": self.voice.url,
                "vibe-coding": self.vibe.url,
                "browser-service": self.browser.url,
            },
            **overrides,
        )
        self.gateway = gateway_app(self.settings, self.authenticator, self.kit)
        self.server = ServerThread(self.gateway).start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def research_health_calls(self) -> int:
        return self.research_app.hits

    def stop(self) -> None:
        for server in (self.server, self.research, self.voice, self.vibe, self.browser):
            server.stop()


async def raw_request(port: int, data: bytes, wait_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 exchange over a fresh socket, bytes exactly as given (no
    client-side path normalisation); the response must be Content-Length framed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), wait_s)
        return status, headers, body
    finally:
        writer.close()
