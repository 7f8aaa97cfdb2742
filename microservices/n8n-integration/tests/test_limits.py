"""Per-user limits hold under concurrency (issue 14): parallel reservations for one user
never exceed the cap — each check-and-record is one step under a per-user lock in
PostgreSQL, shared by every replica of the service — and other users are unaffected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from harvis_common.db import create_pool
from n8n_integration.limits import LimitReached, Limits
from n8n_integration.settings import Settings


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(
        Settings().database_url, service="n8n-integration", migrations="n8n_integration.migrations", max_size=30
    )
    try:
        yield p
    finally:
        await p.close()


def limits(pool: asyncpg.Pool) -> Limits:
    return Limits(pool, max_workflows=3, max_active=2, max_runs_per_hour=5)


async def _outcomes(coros: list) -> tuple[list, list[LimitReached]]:
    results = await asyncio.gather(*coros, return_exceptions=True)
    refused = [r for r in results if isinstance(r, LimitReached)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, LimitReached)]
    assert not others, others
    return [r for r in results if not isinstance(r, BaseException)], refused


async def test_parallel_workflow_reservations_never_exceed_the_cap(pool: asyncpg.Pool) -> None:
    lim = limits(pool)
    ok, refused = await _outcomes([lim.reserve_workflow(1501, f"W{i}") for i in range(20)])
    assert len(ok) == 3 and len(refused) == 17
    assert all("3 workflows" in str(r) and r.retry_after_s >= 1 for r in refused)
    # a reservation that fails in n8n gives its slot back; a created one becomes the real record
    await lim.release_workflow(ok[0])
    await lim.confirm_workflow(ok[1], 1501, "n8n-1501-a", "W", "harvis-path", "json", None)
    again, _ = await _outcomes([lim.reserve_workflow(1501, "W") for _ in range(5)])
    assert len(again) == 1
    other, _ = await _outcomes([lim.reserve_workflow(1502, "W") for _ in range(5)])
    assert len(other) == 3  # another user has their own count


async def test_a_stale_reservation_does_not_count_forever(pool: asyncpg.Pool) -> None:
    lim = limits(pool)
    await _outcomes([lim.reserve_workflow(1503, "W") for _ in range(3)])
    await pool.execute(
        "UPDATE n8n_workflows SET created_at = now() - interval '1 hour' WHERE user_id = 1503 AND pending"
    )
    ok, _ = await _outcomes([lim.reserve_workflow(1503, "W") for _ in range(5)])
    assert len(ok) == 3  # a crash between reserve and confirm must not lock the user out


async def test_parallel_activations_never_exceed_the_cap(pool: asyncpg.Pool) -> None:
    lim = limits(pool)
    for i in range(3):
        await pool.execute("INSERT INTO n8n_workflows (n8n_id, user_id, name) VALUES ($1, 1504, 'W')", f"a1504-{i}")
    ok, refused = await _outcomes([lim.reserve_activation(1504, f"a1504-{i % 3}") for i in range(12)])
    # two workflows get active (their repeated activations cost nothing), the third one never
    assert len(ok) == 8 and len(refused) == 4 and all("2 active workflows" in str(r) for r in refused)
    active = await pool.fetchval("SELECT count(*) FROM n8n_workflows WHERE user_id = 1504 AND active")
    assert active == 2
    # activating one that is active already costs nothing; deactivating frees a slot
    actives = [r["n8n_id"] for r in await pool.fetch(
        "SELECT n8n_id FROM n8n_workflows WHERE user_id = 1504 AND active ORDER BY n8n_id"
    )]  # fmt: skip
    await lim.reserve_activation(1504, actives[0])
    await lim.set_inactive(actives[0])
    _, refused = await _outcomes([lim.reserve_activation(1504, f"a1504-{i}") for i in range(3) for _ in range(2)])
    assert await pool.fetchval("SELECT count(*) FROM n8n_workflows WHERE user_id = 1504 AND active") == 2
    assert refused and all("2 active workflows" in str(r) for r in refused)


async def test_parallel_runs_never_exceed_the_hourly_cap(pool: asyncpg.Pool) -> None:
    lim = limits(pool)
    await pool.execute("INSERT INTO n8n_workflows (n8n_id, user_id, name) VALUES ('r1505', 1505, 'W')")
    ok, refused = await _outcomes([lim.take_run(1505, "r1505") for _ in range(25)])
    assert len(ok) == 5 and len(refused) == 20
    assert all("5 executions per hour" in str(r) and 3500 <= r.retry_after_s <= 3601 for r in refused)
    # a run n8n never started (unreachable) is given back
    await lim.refund_run(ok[0])
    again, _ = await _outcomes([lim.take_run(1505, "r1505") for _ in range(3)])
    assert len(again) == 1
    # runs older than an hour leave the window
    await pool.execute("UPDATE n8n_runs SET started_at = now() - interval '61 minutes' WHERE user_id = 1505")
    later, _ = await _outcomes([lim.take_run(1505, "r1505") for _ in range(8)])
    assert len(later) == 5
