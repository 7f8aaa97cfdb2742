"""Fixtures for core-api tests: a throwaway PostgreSQL database per session,
Redis with a per-run key prefix, and the auth layer mounted on a small app.

Needs a real PostgreSQL (`HARVIS_TEST_PG_ADMIN_URL`, a role that may create
databases) and Redis (`HARVIS_TEST_REDIS_URL`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from redis.asyncio import Redis

from core_api.api.routes import admin, auth
from core_api.auth.service import AuthService
from core_api.settings import Settings
from core_api.store import users
from harvis_common.db import migrate
from harvis_common.errors import install_error_handlers
from harvis_testkit import create_database, drop_database_sync, run_private

REDIS_URL = os.environ.get("HARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "test-secret-" + "x" * 60  # 64+ bytes: no HS512 key warning in the forgery tests
PASSWORD = "blue-Harbour-lamp-42"  # passes the policy


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "",
        "jwt_secret": JWT_SECRET,
        "jwt_ttl_minutes": 60,
        "login_rate_per_ip": 50,
        "login_rate_per_account": 5,
        "login_rate_window_s": 60,
        # The tests sign many users up from one address; the signup limit has its own tests.
        "signup_rate_per_ip": 100_000,
        "revocation_sync_s": 3600.0,  # tests that need the background sync lower it
        "redis_url": "",
        "bcrypt_rounds": 4,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def fresh_database() -> Iterator[Callable[[], Awaitable[str]]]:
    """Makes empty databases (DSNs) on demand; all are dropped at the end of the session."""
    names: list[str] = []

    async def make() -> str:
        name, dsn = await create_database("harvis_test")
        names.append(name)
        return dsn

    yield make
    for name in names:
        drop_database_sync(name)


@pytest.fixture(scope="session")
def database_url(fresh_database: Callable[[], Awaitable[str]]) -> str:
    """The session's database, migrated."""

    async def setup() -> str:
        dsn = await fresh_database()
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, "core-api", "core_api.migrations")
        finally:
            await conn.close()
        return dsn

    return run_private(setup())


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=5)
    assert pool is not None
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.ping()  # fail loudly: these tests need a real Redis
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def redis_prefix(redis: Redis) -> AsyncIterator[str]:
    """A key prefix no other test (or run) shares; its keys are deleted afterwards."""
    prefix = f"harvis-test-{uuid.uuid4().hex[:10]}:"
    yield prefix
    keys = [k async for k in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


ServiceFactory = Callable[..., Awaitable[AuthService]]


@pytest_asyncio.fixture
async def make_service(pool: asyncpg.Pool) -> AsyncIterator[ServiceFactory]:
    """Started AuthServices on the session database, stopped at teardown.

    `redis_prefix=...` gives the service its own Redis client (as each replica
    has) with that key prefix; without it the service runs Redis-less.
    """
    started: list[AuthService] = []

    async def make(redis_prefix: str | None = None, **overrides: Any) -> AuthService:
        redis = Redis.from_url(REDIS_URL) if redis_prefix else None
        service = AuthService(make_settings(**overrides), pool, redis, key_prefix=redis_prefix)
        started.append(service)
        await service.start()
        return service

    yield make
    for service in reversed(started):
        await service.stop()
        if service.redis is not None:
            await service.redis.aclose()


def build_app(service: AuthService) -> FastAPI:
    """What create_app mounts, without the gateway: error handlers, the auth and admin routers, state."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.state.auth, app.state.pool, app.state.redis = service, service.pool, service.redis
    return app


ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest_asyncio.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[httpx.AsyncClient] = []

    async def make(service: AuthService, peer: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=build_app(service), client=(peer, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest_asyncio.fixture
async def service(make_service: ServiceFactory) -> AuthService:
    return await make_service()


@pytest_asyncio.fixture
async def client(make_client: ClientFactory, service: AuthService) -> httpx.AsyncClient:
    return await make_client(service)


def new_user(password: str = PASSWORD) -> dict[str, str]:
    """Signup fields unique to this call (tests share one database)."""
    tag = uuid.uuid4().hex[:10]
    return {"username": f"user_{tag}", "email": f"user.{tag}@example.com", "password": password}


async def signup(client: httpx.AsyncClient, user: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """Sign a new user up; (the user's fields, their token). Leaves no cookie in the client."""
    user = user or new_user()
    response = await client.post("/api/auth/signup", json=user)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return user, response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def set_flags(
    pool: asyncpg.Pool, email: str, *, is_admin: bool | None = None, is_active: bool | None = None
) -> None:
    """Change a user's flags straight in the table, by email (as the admin CLI does)."""
    user = await users.find_by_email(pool, email)
    assert user is not None
    await users.update(pool, user.id, is_admin=is_admin, is_active=is_active)


# The chat tests' fixtures (fake Ollama + a real uvicorn serving the chat routers) live in
# chat_support.py; imported here so every test module can ask for them.
from chat_support import chat_server, make_chat_server  # noqa: E402, F401


@pytest.fixture(scope="module")
def fleet() -> Iterator[Any]:
    """The gateway test fleet (gateway_support.Fleet) whose browser-service closes every
    connection unanswered; a test module with other needs defines its own `fleet`."""
    from gateway_support import Fleet, close_at_once

    fleet = Fleet(close_at_once)
    yield fleet
    fleet.stop()
