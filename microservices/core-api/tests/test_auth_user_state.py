"""A user's current state counts, not what their token said when it was issued (issue 14:
a deleted or disabled user kept access until the token expired, up to 24 hours)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import jwt
import pytest
from chat_support import ChatServer
from conftest import ClientFactory, ServiceFactory, bearer, set_flags, signup

from core_api.auth.service import AuthService
from core_api.gateway.proxy import Gateway
from core_api.settings import Settings
from harvis_testkit import InternalAuthKit

pytestmark = pytest.mark.asyncio

CACHE_S = 0.3


async def eventually_status(client: httpx.AsyncClient, path: str, token: str, status: int, timeout_s: float) -> float:
    """Seconds until `path` answers `status` for this token (fails after `timeout_s`)."""
    start = time.monotonic()
    while True:
        r = await client.get(path, headers=bearer(token))
        if r.status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout_s, (path, r.status_code, r.text)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE users SET is_active = false WHERE id = $1",
        "DELETE FROM users WHERE id = $1",
    ],
    ids=["disabled", "deleted"],
)
async def test_disabled_or_deleted_users_token_stops_within_seconds(
    make_chat_server, pool: asyncpg.Pool, change: str
) -> None:
    """Changed straight in the database (another replica, the CLI, an operator): every
    authenticated route refuses the token within the cache time, not at its expiry."""
    server: ChatServer = await make_chat_server(user_state_cache_s=CACHE_S)
    _, token = await server.user()
    auth: AuthService = server.app.state.auth
    async with server.client() as c:
        assert (await c.get("/api/chat-history/sessions", headers=bearer(token))).status_code == 200
        user = await auth.authenticate(token)
        assert user is not None
        await pool.execute(change, user.id)
        took = await eventually_status(c, "/api/chat-history/sessions", token, 401, timeout_s=3)
        assert took <= CACHE_S + 1.0
        r = await c.get("/api/models/memory-pressure", headers=bearer(token))
        assert r.status_code == 401 and r.json()["detail"] == "Could not validate credentials"


async def test_disabled_user_cannot_log_in(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    user, _ = await signup(client)
    await pool.execute("UPDATE users SET is_active = false WHERE email = $1", user["email"])
    r = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert r.status_code == 403, r.text
    assert "disabled" in r.json()["message"].lower()
    assert "set-cookie" not in r.headers
    # A wrong password does not reveal the account's state.
    wrong = await client.post("/api/auth/login", json={"email": user["email"], "password": "Not-the-one-1"})
    assert wrong.status_code == 401


async def test_gateway_signs_the_current_state(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    """The identity the gateway hands a service follows the database too: a disabled user
    gets no signed header, and a new admin is signed as one without logging in again."""
    service = await make_service(user_state_cache_s=CACHE_S)
    client = await make_client(service)
    fields, token = await signup(client)
    kit = InternalAuthKit()
    gateway = Gateway(lambda *a: None, Settings(_env_file=None, jwt_secret="x" * 32))  # type: ignore[arg-type]
    gateway.attach(service, kit.signer)
    await gateway.start()
    try:
        identified = await gateway.identify(token, "voice-service", "rid-1")
        assert identified is not None
        claims = jwt.decode(identified[1], options={"verify_signature": False})
        assert claims["adm"] is False
        await set_flags(service.pool, fields["email"], is_admin=True)
        await asyncio.sleep(CACHE_S + 0.1)
        identified = await gateway.identify(token, "voice-service", "rid-2")
        assert identified is not None
        assert jwt.decode(identified[1], options={"verify_signature": False})["adm"] is True
        await set_flags(service.pool, fields["email"], is_active=False)
        await asyncio.sleep(CACHE_S + 0.1)
        assert await gateway.identify(token, "voice-service", "rid-3") is None
    finally:
        await gateway.stop()


async def test_state_is_read_once_per_cache_period(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    """The hot path stays in memory: a burst of requests costs one database read, not one each."""
    service = await make_service(user_state_cache_s=30)
    client = await make_client(service)
    _, token = await signup(client)
    loads = service.user_states.loads
    results = await asyncio.gather(*(service.authenticate(token) for _ in range(50)))
    assert all(r is not None for r in results)
    assert service.user_states.loads - loads <= 1


async def test_database_outage_keeps_the_last_known_state(
    make_service: ServiceFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database blip must not log everyone out (the front end drops its token on a 401):
    the last known state is used; a user never seen before gets a 503, not a 401."""
    service = await make_service(user_state_cache_s=0.05)
    client = await make_client(service)
    _, known = await signup(client)
    _, unseen = await signup(client)
    assert await service.authenticate(known) is not None
    service.user_states.forget_all()
    assert await service.authenticate(known) is not None  # loaded again: now remembered

    async def broken(*_: object, **__: object) -> None:
        raise OSError("database unreachable")

    monkeypatch.setattr(service.user_states, "_fetch", broken)
    await asyncio.sleep(0.1)
    assert await service.authenticate(known) is not None
    r = await client.get("/api/auth/me", headers=bearer(unseen))
    assert r.status_code == 503, r.text
    assert r.json()["message"] and int(r.headers["retry-after"]) >= 1
