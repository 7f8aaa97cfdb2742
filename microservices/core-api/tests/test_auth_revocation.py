"""Logout revokes the token: here at once, on other replicas via the DB sync or
Redis pub/sub, and across restarts; expired revocations are purged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from conftest import ClientFactory, ServiceFactory, bearer, signup
from redis.asyncio import Redis

from core_api.auth.service import AuthService

pytestmark = pytest.mark.asyncio


async def eventually(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until `predicate()` held; fails after `timeout_s`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_logout_revokes_and_clears_the_cookie(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    _, token = await signup(client)
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200

    response = await client.post("/api/auth/logout", headers={"Cookie": f"access_token={token}"})
    assert response.status_code == 200
    assert response.json() == {"status": "logged_out", "revoked": True}
    cleared = response.headers["set-cookie"]
    assert cleared.startswith('access_token="";') or cleared.startswith("access_token=;")
    assert "Max-Age=0" in cleared and "Path=/" in cleared and "HttpOnly" in cleared
    client.cookies.clear()

    for headers in (bearer(token), {"Cookie": f"access_token={token}"}):
        after = await client.get("/api/auth/me", headers=headers)
        assert after.status_code == 401
        assert after.json()["detail"] == "Could not validate credentials"
    # Stored with the token's expiry, so it survives restarts and can be purged later.
    row = await pool.fetchrow(
        "SELECT user_id, expires_at > now() AS live, revoked_at <= now() AS past FROM revoked_tokens"
        " WHERE jti = (SELECT jti FROM revoked_tokens ORDER BY revoked_at DESC LIMIT 1)"
    )
    assert row is not None and row["live"] and row["past"] and row["user_id"] is not None

    again = await client.post("/api/auth/logout", headers=bearer(token))
    assert again.status_code == 200 and again.json()["revoked"] is False


async def test_logout_without_a_token_still_clears_the_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/logout")
    assert response.status_code == 200
    assert response.json() == {"status": "logged_out", "revoked": False}
    assert "Max-Age=0" in response.headers["set-cookie"]


async def test_a_new_login_works_after_logout(client: httpx.AsyncClient) -> None:
    user, token = await signup(client)
    await client.post("/api/auth/logout", headers=bearer(token))
    login = await client.post("/api/auth/login", json={"email": user["email"], "password": user["password"]})
    assert login.status_code == 200
    fresh = login.json()["access_token"]
    assert fresh != token
    assert (await client.get("/api/auth/me", headers=bearer(fresh))).status_code == 200


async def test_other_replica_learns_by_db_sync(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    one = await make_service()
    other = await make_service(revocation_sync_s=0.2)  # no Redis: only its background sync can tell it
    client = await make_client(one)
    _, token = await signup(client)
    assert other.verify_token(token) is not None  # valid, and now in its cache

    await client.post("/api/auth/logout", headers=bearer(token))
    assert one.verify_token(token) is None  # at once where it happened
    await eventually(lambda: other.verify_token(token) is None, timeout_s=5)
    assert other.revocations.learned_from_sync == 1
    assert other.revocations.learned_from_pubsub == 0


async def test_revocation_survives_a_restart(make_service: ServiceFactory, make_client: ClientFactory) -> None:
    first = await make_service()
    client = await make_client(first)
    _, token = await signup(client)
    await client.post("/api/auth/logout", headers=bearer(token))
    await first.stop()

    restarted = await make_service()
    assert restarted.revocations.is_revoked(restarted.tokens.decode(token).jti)
    assert restarted.verify_token(token) is None


async def test_other_replica_learns_at_once_by_pubsub(
    make_service: ServiceFactory, make_client: ClientFactory, redis_prefix: str
) -> None:
    # Both sync only hourly: pub/sub is the only way the second can learn in time.
    one = await make_service(redis_prefix)
    other = await make_service(redis_prefix)
    client = await make_client(one)
    _, token = await signup(client)
    assert other.verify_token(token) is not None
    synced = other.revocations.learned_from_sync

    await client.post("/api/auth/logout", headers=bearer(token))
    took = await eventually(lambda: other.verify_token(token) is None, timeout_s=2)
    assert took < 1.0
    assert other.revocations.learned_from_pubsub == 1
    assert other.revocations.learned_from_sync == synced  # not the DB: pub/sub told it


async def test_pubsub_ignores_malformed_messages(make_service: ServiceFactory, redis: Redis, redis_prefix: str) -> None:
    service = await make_service(redis_prefix)
    token, user = service.tokens.issue(user_id=1, username="ada", email="ada@example.com", is_admin=False)
    channel = service.revocations.channel
    await redis.publish(channel, b"not json")
    await redis.publish(channel, b'{"jti": 1}')
    await redis.publish(channel, f'{{"jti": "{user.jti}", "exp": {user.exp}}}'.encode())
    await eventually(lambda: service.verify_token(token) is None, timeout_s=2)
    assert service.revocations.learned_from_pubsub == 1


async def test_expired_revocations_are_purged(service: AuthService, pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES"
        " ('expired-one', NULL, now() - interval '1 minute'), ('live-one', NULL, now() + interval '1 hour')"
    )
    try:
        deleted = await service.revocations.purge_expired()
        assert deleted >= 1
        left = {r["jti"] for r in await pool.fetch("SELECT jti FROM revoked_tokens WHERE jti LIKE '%-one'")}
        assert left == {"live-one"}
        assert service.revocations.purged_rows >= 1
    finally:
        await pool.execute("DELETE FROM revoked_tokens WHERE jti IN ('expired-one', 'live-one')")


async def test_memory_set_drops_expired_entries(service: AuthService) -> None:
    now = int(time.time())
    token, user = service.tokens.issue(user_id=1, username="ada", email="ada@example.com", is_admin=False)
    service.revocations._on_message(f'{{"jti": "{user.jti}", "exp": {user.exp}}}')
    service.revocations._revoked["gone"] = now - 5  # as if its token expired since
    await service.revocations.purge_expired()
    assert service.revocations.is_revoked(user.jti) and service.verify_token(token) is None
    assert not service.revocations.is_revoked("gone")


async def test_deleted_user_token_is_refused_and_can_still_be_revoked(
    client: httpx.AsyncClient, service: AuthService, pool: asyncpg.Pool
) -> None:
    _, token = await signup(client)
    user = service.verify_token(token)
    assert user is not None
    await pool.execute("DELETE FROM users WHERE id = $1", user.id)
    me = await client.get("/api/auth/me", headers=bearer(token))
    assert me.status_code == 401 and me.json()["detail"] == "Could not validate credentials"
    logout = await client.post("/api/auth/logout", headers=bearer(token))
    assert logout.status_code == 200 and logout.json()["revoked"] is True
    assert await pool.fetchval("SELECT user_id IS NULL FROM revoked_tokens WHERE jti = $1", user.jti) is True
