"""harvis_common.quotas: rolling windows of weighted uses, atomic under concurrency, in
process and in Redis (the real one on 127.0.0.1:6379, keys under a prefix of their own),
and the FastAPI helper's 429 + Retry-After + JSON {detail, message}."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Header

from harvis_common.errors import install_error_handlers
from harvis_common.quotas import (
    MemoryWindows,
    Quota,
    QuotaExceeded,
    Quotas,
    RedisWindows,
    Use,
    charge,
)

REDIS_URL = os.environ.get("HARVIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def _delete_prefix(prefix: str) -> list[bytes]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        return keys
    finally:
        await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"harvis:quota-test:{uuid.uuid4().hex}:"


@pytest.fixture(params=["memory", "redis"])
async def windows(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[MemoryWindows | RedisWindows]:
    if request.param == "memory":
        yield MemoryWindows()
        return
    store = RedisWindows(REDIS_URL, prefix)
    try:
        yield store
    finally:
        await store.close()
        await _delete_prefix(prefix)


@pytest.fixture(params=["memory", "redis"])
async def redis_url(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[str]:
    """ "" (in process) or the real Redis; afterwards the counts must have reached Redis."""
    if request.param == "memory":
        yield ""
        return
    yield REDIS_URL
    assert await _delete_prefix(prefix), "the counts never reached Redis (a silent in-process fallback?)"


def use(key: str, limit: int, window_s: int, cost: int = 1) -> list[Use]:
    return [Use(key, limit, window_s, cost)]


# ---------------------------------------------------------------- the windows


async def test_a_window_frees_uses_as_they_age(windows: MemoryWindows | RedisWindows) -> None:
    assert await windows.take(use("k", 2, 1)) == [0]
    assert await windows.take(use("k", 2, 1)) == [0]
    [wait] = await windows.take(use("k", 2, 1))
    assert 0 < wait <= 1
    assert await windows.take(use("other", 2, 1, cost=2)) == [0]  # keys are separate
    await asyncio.sleep(wait + 0.05)
    assert await windows.take(use("k", 2, 1, cost=2)) == [0]  # both uses aged out
    assert (await windows.take(use("k", 2, 1)))[0] > 0


async def test_uses_are_weighted_by_their_cost(windows: MemoryWindows | RedisWindows) -> None:
    assert await windows.take(use("audio", 100, 60, cost=70)) == [0]
    [wait] = await windows.take(use("audio", 100, 60, cost=31))  # 101 > 100: nothing recorded
    assert 59 < wait <= 60
    assert await windows.take(use("audio", 100, 60, cost=30)) == [0]  # exactly the limit
    assert (await windows.take(use("audio", 100, 60, cost=1)))[0] > 0


async def test_the_wait_is_until_enough_has_aged_out(windows: MemoryWindows | RedisWindows) -> None:
    assert await windows.take(use("w", 10, 2, cost=4)) == [0]
    await asyncio.sleep(1.0)
    assert await windows.take(use("w", 10, 2, cost=6)) == [0]
    [small] = await windows.take(use("w", 10, 2, cost=3))  # the first use (4) frees enough
    [large] = await windows.take(use("w", 10, 2, cost=8))  # both must age out
    assert 0.5 < small <= 1.05 and 1.5 < large <= 2.0, (small, large)


async def test_concurrent_takes_never_overshoot(windows: MemoryWindows | RedisWindows) -> None:
    results = await asyncio.gather(*(windows.take(use("burst", 7, 60)) for _ in range(50)))
    assert sum(1 for [r] in results if r == 0) == 7
    assert all(0 < r <= 60 for [r] in results if r != 0)


async def test_concurrent_weighted_takes_never_overshoot(windows: MemoryWindows | RedisWindows) -> None:
    results = await asyncio.gather(*(windows.take(use("secs", 100, 60, cost=7)) for _ in range(40)))
    assert sum(1 for [r] in results if r == 0) == 14  # 14 × 7 = 98 ≤ 100 < 105


async def test_several_uses_are_taken_all_or_none(windows: MemoryWindows | RedisWindows) -> None:
    assert await windows.take(use("b", 1, 60)) == [0]  # b is full
    waits = await windows.take([Use("a", 5, 60, 1), Use("b", 1, 60, 1)])
    assert waits[0] == 0 and waits[1] > 0
    # a was not recorded: its five uses are all still there.
    assert await windows.take(use("a", 5, 60, cost=5)) == [0]


async def test_redis_recovers_a_lost_sum(prefix: str) -> None:
    store = RedisWindows(REDIS_URL, prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        assert await store.take(use("s", 10, 60, cost=6)) == [0]
        sums = [k async for k in client.scan_iter(match=prefix + "*:sum")]
        assert len(sums) == 1 and int(await client.get(sums[0])) == 6
        await client.delete(*sums)  # e.g. evicted: counted again from the uses
        assert (await store.take(use("s", 10, 60, cost=5)))[0] > 0
        assert await store.take(use("s", 10, 60, cost=4)) == [0]
        assert int(await client.get(sums[0])) == 10
        assert 0 < await client.pttl(sums[0]) <= 60_000
    finally:
        await store.close()
        await client.aclose()
        await _delete_prefix(prefix)


# ---------------------------------------------------------------- Quotas


async def test_quota_messages_say_which_and_when(redis_url: str, prefix: str) -> None:
    quotas = Quotas([Quota("chat", "chat turns", 2, 3600)], redis_url=redis_url, prefix=prefix)
    try:
        await quotas.take("chat", 1)
        await quotas.take("chat", 1)
        with pytest.raises(QuotaExceeded) as caught:
            await quotas.take("chat", 1)
        exc = caught.value
        assert exc.quota == "chat" and 3590 <= exc.retry_after_s <= 3600
        assert "quota reached: 2 chat turns per hour for your account; resets in 1 h (at " in exc.message, exc.message
        await quotas.take("chat", 2)  # another user
        with pytest.raises(QuotaExceeded, match="needs 3 chat turns, but the quota allows at most 2 chat turns"):
            await quotas.take("chat", 3, cost=3)
        assert await quotas.describe() == f"{quotas.backend}: 2 chat turns per hour"
    finally:
        await quotas.close()


async def test_take_all_charges_every_quota_or_none(redis_url: str, prefix: str) -> None:
    quotas = Quotas(
        [Quota("turns", "turns", 10, 3600), Quota("stt", "seconds of audio", 60, 3600)],
        redis_url=redis_url,
        prefix=prefix,
    )
    try:
        await quotas.take_all(7, {"turns": 1, "stt": 50})
        with pytest.raises(QuotaExceeded) as caught:
            await quotas.take_all(7, {"turns": 1, "stt": 20})
        assert caught.value.quota == "stt" and "60 seconds of audio per hour" in caught.value.message
        for _ in range(9):  # the refused take used no turn
            await quotas.take("turns", 7)
        with pytest.raises(QuotaExceeded):
            await quotas.take("turns", 7)
        await quotas.take_all(7, {"turns": 0, "stt": 10})  # a zero cost is no use
    finally:
        await quotas.close()


async def test_a_service_keeps_its_quotas_under_its_prefix(redis_url: str, prefix: str) -> None:
    quotas = Quotas.for_service([Quota("turns", "turns", 1, 3600)], redis_url=redis_url, service_prefix=prefix)
    try:
        assert quotas.backend == ("redis" if redis_url else "memory")
        await quotas.take("turns", 1)
        with pytest.raises(QuotaExceeded):
            await quotas.take("turns", 1)
        if redis_url:
            client = aioredis.Redis.from_url(redis_url)
            try:
                keys = [k async for k in client.scan_iter(match=prefix + "*")]
            finally:
                await client.aclose()
            assert keys and all(k.startswith(f"{prefix}quota:".encode()) for k in keys), keys
    finally:
        await quotas.close()


async def test_an_unreachable_redis_still_limits_in_process() -> None:
    quotas = Quotas([Quota("x", "things", 3, 60)], redis_url="redis://127.0.0.1:1/0")
    try:
        results = await asyncio.gather(*(quotas.take("x", 1) for _ in range(10)), return_exceptions=True)
        assert sum(r is None for r in results) == 3
        assert all(isinstance(r, QuotaExceeded) for r in results if r is not None)
    finally:
        await quotas.close()


def test_a_quota_needs_a_limit_and_a_window() -> None:
    with pytest.raises(ValueError):
        Quota("x", "things", 0, 60)
    assert str(Quota("p", "probes", 5, 60)) == "5 probes per minute"
    assert str(Quota("s", "SMS", 10, 86_400)) == "10 SMS per day"
    assert str(Quota("o", "turns", 3, 120)) == "3 turns per 2 min"


# ---------------------------------------------------------------- charge(): a route's 429


def quota_app(quotas: Quotas) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    done: list[int] = []

    @app.post("/work")
    async def work(x_user: Annotated[int, Header()], cost: int = 1) -> dict[str, int]:
        await charge(quotas, x_user, "work", cost)
        await asyncio.sleep(0.01)  # the costly act, interleaved with the other requests
        done.append(x_user)
        return {"done": len(done)}

    app.state.done = done
    return app


async def test_charge_answers_429_with_retry_after_under_a_parallel_burst(redis_url: str, prefix: str) -> None:
    quotas = Quotas([Quota("work", "jobs", 3, 3600)], redis_url=redis_url, prefix=prefix)
    app = quota_app(quotas)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            burst = await asyncio.gather(*(client.post("/work", headers={"X-User": "1"}) for _ in range(20)))
            assert sorted(r.status_code for r in burst) == [200] * 3 + [429] * 17
            assert app.state.done == [1, 1, 1]
            for r in burst:
                if r.status_code == 429:
                    body = r.json()
                    assert set(body) == {"detail", "message"} and body["message"] == body["detail"]
                    assert "3 jobs per hour" in body["message"] and "resets in" in body["message"]
                    assert 3500 < int(r.headers["Retry-After"]) <= 3600
                    assert r.headers["content-type"] == "application/json"
            # Another user is unaffected.
            other = await asyncio.gather(*(client.post("/work", headers={"X-User": "2"}) for _ in range(5)))
            assert sorted(r.status_code for r in other) == [200, 200, 200, 429, 429]
            # More than the whole quota can never fit: said plainly.
            whole = await client.post("/work?cost=4", headers={"X-User": "3"})
            assert whole.status_code == 429 and "at most 3 jobs per hour" in whole.json()["message"]
    finally:
        await quotas.close()
