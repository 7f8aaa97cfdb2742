"""AuthService lifecycle: Redis trouble never stops it starting, serving or stopping."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from conftest import ServiceFactory, make_settings
from redis.asyncio import Redis

from core_api.auth.service import AuthService

pytestmark = pytest.mark.asyncio


async def test_starts_and_stops_with_redis_unreachable(pool: asyncpg.Pool) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    service = AuthService(make_settings(), pool, dead, key_prefix="unreachable:")
    try:
        await asyncio.wait_for(service.start(), 5)
        token, _ = service.tokens.issue(user_id=1, username="ada", email="ada@example.com", is_admin=False)
        assert service.verify_token(token) is not None
    finally:
        started = time.monotonic()
        await service.stop()
        assert time.monotonic() - started < 5
        await dead.aclose()


async def test_stop_is_bounded_when_redis_closed_first(make_service: ServiceFactory, redis_prefix: str) -> None:
    service = await make_service(redis_prefix)
    assert service.redis is not None
    await service.redis.aclose()  # the wrong order: must still not hang
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await service.stop()
    assert time.monotonic() - started < 5


async def test_token_check_is_synchronous(service: AuthService) -> None:
    token, user = service.tokens.issue(user_id=3, username="ada", email="ada@example.com", is_admin=False)
    result = service.verify_token(token)  # no await: signature, claims and revocation are all in memory
    assert result == user
