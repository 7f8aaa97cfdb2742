"""The app under a real uvicorn on a free port, on an event loop of its own thread (as in
production), for tests that need real sockets: many requests and WebSockets at once from
one asyncio test, and a client timeout that still runs when the server's loop is stuck."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from conftest import KIT, SERVICE, make_settings
from websockets.asyncio.client import ClientConnection, connect

from harvis_testkit import create_database, drop_database
from vibe_coding.app import create_app


class LiveServer:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://")

    def headers(self, user_id: int) -> dict[str, str]:
        return KIT.headers(SERVICE, user_id=user_id, username=f"user{user_id}")

    def client(self, user_id: int, timeout_s: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=self.headers(user_id), timeout=timeout_s)

    def terminal(self, user_id: int, session_id: str) -> Any:
        """`async with server.terminal(user, sid) as ws:` a terminal WebSocket."""
        url = f"{self.ws_url}/api/vibecoding/container/{session_id}/terminal"
        return connect(url, additional_headers=self.headers(user_id), open_timeout=20, close_timeout=2)

    async def session(self, user_id: int) -> str:
        async with self.client(user_id) as c:
            r = await c.post("/api/vibe/session/create", json={"name": "live"})
        assert r.status_code == 200, r.text
        return r.json()["session_id"]

    async def uid_of(self, user_id: int, session_id: str) -> int:
        """The uid the session's sandboxed code runs as, asked from inside the sandbox."""
        async with self.client(user_id) as c:
            r = await c.post("/api/vibe/execute", json={"session_id": session_id, "command": "id -u"})
        assert r.status_code == 200, r.text
        return int(r.json()["output"])


async def first_event(ws: ClientConnection, timeout_s: float = 20) -> tuple[str, Any]:
    """("text", the first output) while the terminal is open, or ("closed", (code, reason))."""
    from websockets.exceptions import ConnectionClosed

    try:
        return "text", await asyncio.wait_for(ws.recv(), timeout_s)
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        return "closed", (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")


@asynccontextmanager
async def live_server(*, own_database: bool = False, **settings: Any) -> AsyncIterator[LiveServer]:
    """The app with `settings` served on 127.0.0.1; `own_database`: on a fresh database of its
    own (for tests that count every session or sandbox uid there is)."""
    db_name = None
    if own_database:
        db_name, settings["database_url"] = await create_database("harvis_test_vibe_live")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(make_settings(**settings)), log_level="warning", lifespan="on", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started or not thread.is_alive():
                break
            await asyncio.sleep(0.05)
        assert server.started, "the app did not start"
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 20)
        sock.close()
        if db_name is not None:
            await drop_database(db_name)
