"""Fixtures for the chat tests: the fake Ollama (tests/fakes, Ollama's real NDJSON
wire format) and core-api's own routers (api/routes) served by a real uvicorn on a
free port, so streaming, headers timing and disconnects are the real thing."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest_asyncio
import uvicorn
from conftest import ServiceFactory, bearer, new_user
from fastapi import FastAPI

from core_api.api.routes import routers
from core_api.app import start_chat, start_internal, stop_chat
from core_api.chat.key_cipher import generate_key
from harvis_common.errors import install_error_handlers
from harvis_common.internal_auth import generate_keypair, load_private_key
from harvis_testkit import parse_sse

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "fakes"))
from fake_ollama import FakeOllama

PRIVATE_KEY, PUBLIC_KEY = generate_keypair()
ENCRYPTION_KEY = generate_key()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    def __init__(self, url: str, app: FastAPI, fake: FakeOllama) -> None:
        self.url, self.app, self.fake = url, app, fake

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, trust_env=False, **kw)

    async def user(self, fields: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
        """A signed-up user (new unless `fields` are given): (fields, token)."""
        async with self.client() as c:
            fields = fields or new_user()
            r = await c.post("/api/auth/signup", json=fields)
            assert r.status_code == 200, r.text
            return fields, r.json()["access_token"]


ChatServerFactory = Callable[..., Awaitable[ChatServer]]


@pytest_asyncio.fixture
async def make_chat_server(make_service: ServiceFactory) -> AsyncIterator[ChatServerFactory]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], FakeOllama]] = []

    async def make(**overrides: Any) -> ChatServer:
        fake = FakeOllama()
        fake_url = await fake.start()
        values: dict[str, Any] = {
            "llm_provider": "ollama",
            "ollama_url": fake_url,
            "default_model": "fake-llama:latest",
            "vision_model": "fake-vision:latest",
            "internal_auth_private_key": PRIVATE_KEY,
            "api_key_encryption_key": ENCRYPTION_KEY,
            "sse_heartbeat_s": 0.2,
            "llm_read_timeout_s": 10.0,
            **overrides,
        }
        service = await make_service(**values)
        app = FastAPI()
        install_error_handlers(app)
        for router in routers:
            app.include_router(router)
        app.state.auth, app.state.pool, app.state.redis = service, service.pool, service.redis
        start_chat(app, service.settings, service.pool)
        start_internal(app, service.settings)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        task = asyncio.ensure_future(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        servers.append((server, task, fake))
        return ChatServer(f"http://127.0.0.1:{port}", app, fake)

    yield make
    for server, task, fake in servers:
        server.should_exit = True
        await task
        await stop_chat(server.config.app)
        await fake.stop()


@pytest_asyncio.fixture
async def chat_server(make_chat_server: ChatServerFactory) -> ChatServer:
    return await make_chat_server()


async def chat_events(
    client: httpx.AsyncClient, token: str | None, body: dict[str, Any], path: str = "/api/chat"
) -> tuple[httpx.Response, list[dict[str, Any]], int]:
    headers = bearer(token) if token else {}
    async with client.stream("POST", path, json=body, headers=headers) as r:
        raw = await r.aread()
    if r.status_code != 200:
        return r, [], 0
    events, comments = parse_sse(raw)
    return r, events, comments


def is_uuid(value: Any) -> bool:
    try:
        return len(str(value)) >= 32 and str(uuid.UUID(str(value))) == str(value)
    except ValueError:
        return False


__all__ = [
    "ENCRYPTION_KEY",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "ChatServer",
    "bearer",
    "chat_events",
    "chat_server",
    "free_port",
    "is_uuid",
    "make_chat_server",
    "parse_sse",
]


# ---------------------------------------------------------------- forwarded internal tokens


def internal_token(audience: str, user_id: int, *, key: str = PRIVATE_KEY, iat_offset: int = 0, ttl: int = 60) -> str:
    """An X-Internal-Auth token as the gateway signs it (or, with another key, a forgery)."""
    now = int(time.time()) + iat_offset
    claims = {"iss": "harvis-core-api", "aud": audience, "typ": "internal", "sub": str(user_id), "email": "",
              "username": "", "adm": False, "rid": "r", "iat": now, "exp": now + ttl}  # fmt: skip
    return jwt.encode(claims, load_private_key(key), algorithm="EdDSA")


def bad_internal_tokens(user_id: int, user_jwt: str) -> dict[str, str | None]:
    """What core-api's internal API must refuse with a 401, by label."""
    other_private, _ = generate_keypair()
    now = int(time.time())
    return {
        "absent": None,
        "garbage": "not-a-jwt",
        "forged (another key)": internal_token("voice-service", user_id, key=other_private),
        "too old": internal_token("voice-service", user_id, iat_offset=-901),
        "from the future": internal_token("voice-service", user_id, iat_offset=600),
        "core-api audience": internal_token("core-api", user_id),
        "unknown audience": internal_token("someone", user_id),
        "user JWT": user_jwt,
        "HS256 with the public key": jwt.encode(
            {"iss": "harvis-core-api", "aud": "voice-service", "typ": "internal", "sub": str(user_id),
             "iat": now, "exp": now + 60}, "x" * 40, algorithm="HS256"),
    }  # fmt: skip
