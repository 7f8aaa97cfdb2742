"""The durable TTS job queue on a real PostgreSQL: claim with SKIP LOCKED, leases and
heartbeats, retry of interrupted jobs, final failure, owner-only reads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from harvis_common.db import create_pool
from voice_service.store.jobs import JobQueue


async def queue_on(dsn: str, **kw: Any) -> JobQueue:
    pool = await create_pool(dsn, service="voice-service", migrations="voice_service.migrations")
    return JobQueue(pool, **{"lease_s": 30.0, "max_attempts": 3, "poll_s": 0.05, **kw})


async def test_enqueue_run_complete_owner_only(database_url: str) -> None:
    q = await queue_on(database_url)
    try:
        job_id = await q.enqueue(5, {"text": "hello"})
        job = await q.get(5, job_id)
        assert job is not None and job["state"] == "created" and job["name"] == "tts" and job["data"] == {}
        assert await q.get(6, job_id) is None  # another user
        assert await q.get(5, "not-a-uuid") is None

        async def handler(j: dict[str, Any]) -> dict[str, Any]:
            assert j["payload"] == {"text": "hello"} and j["user_id"] == 5
            return {"audio_path": "/api/audio/x.wav"}

        worker = asyncio.create_task(q.run_worker(handler, lambda e: False))
        for _ in range(100):
            job = await q.get(5, job_id)
            if job and job["state"] == "completed":
                break
            await asyncio.sleep(0.05)
        worker.cancel()
        assert job is not None and job["state"] == "completed" and job["data"]["audio_path"] == "/api/audio/x.wav"
        assert job["attempts"] == 1 and job["completed_at"]
    finally:
        await q.pool.close()


async def test_concurrent_workers_never_claim_the_same_job(database_url: str) -> None:
    qs = [await queue_on(database_url) for _ in range(4)]
    try:
        ids = {await qs[0].enqueue(1, {"n": i}) for i in range(20)}
        claimed: list[str] = []

        async def drain(q: JobQueue) -> None:
            while (row := await q.claim()) is not None:
                claimed.append(str(row["id"]))

        await asyncio.gather(*(drain(q) for q in qs))
        assert sorted(claimed) == sorted(ids)  # each exactly once
    finally:
        for q in qs:
            await q.pool.close()


async def test_an_interrupted_job_is_retried_after_its_lease(database_url: str) -> None:
    dead = await queue_on(database_url, lease_s=1.0)
    alive = await queue_on(database_url, lease_s=1.0)
    try:
        job_id = await dead.enqueue(1, {"text": "x"})
        row = await dead.claim()  # this worker "dies": no heartbeat, no completion
        assert row is not None and str(row["id"]) == job_id
        assert await alive.claim() is None  # leased
        await asyncio.sleep(1.2)
        again = await alive.claim()
        assert again is not None and str(again["id"]) == job_id and again["attempts"] == 2
        assert not await dead.complete(row["id"], {"audio_path": "late"})  # lost its lease
        assert await alive.complete(again["id"], {"audio_path": "ok"})
        job = await alive.get(1, job_id)
        assert job is not None and job["state"] == "completed" and job["data"] == {"audio_path": "ok"}
    finally:
        await dead.pool.close()
        await alive.pool.close()


async def test_heartbeat_keeps_the_lease(database_url: str) -> None:
    q = await queue_on(database_url, lease_s=1.0)
    other = await queue_on(database_url, lease_s=1.0)
    try:
        job_id = await q.enqueue(1, {"text": "slow"})

        async def slow(_: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(2.0)  # twice the lease: only the heartbeat keeps it
            return {"audio_path": "done"}

        row = await q.claim()
        assert row is not None
        run = asyncio.create_task(q._run_one(row, slow, lambda e: False))
        await asyncio.sleep(1.5)
        assert await other.claim() is None
        await run
        job = await q.get(1, job_id)
        assert job is not None and job["state"] == "completed" and job["attempts"] == 1
    finally:
        await q.pool.close()
        await other.pool.close()


async def test_failures_retry_then_fail_and_bad_input_fails_at_once(database_url: str) -> None:
    q = await queue_on(database_url, max_attempts=2)
    try:
        flaky = await q.enqueue(1, {"text": "a"})
        bad = await q.enqueue(1, {"text": "b"})

        class Bad(Exception):
            pass

        async def handler(j: dict[str, Any]) -> dict[str, Any]:
            raise Bad("input") if j["payload"]["text"] == "b" else RuntimeError("engine crashed")

        for _ in range(3):
            row = await q.claim()
            if row is None:
                break
            await q._run_one(row, handler, lambda e: isinstance(e, Bad))
        flaky_job, bad_job = await q.get(1, flaky), await q.get(1, bad)
        assert flaky_job is not None and flaky_job["state"] == "failed" and flaky_job["attempts"] == 2
        assert "engine crashed" in flaky_job["error"]
        assert bad_job is not None and bad_job["state"] == "failed" and bad_job["attempts"] == 1
    finally:
        await q.pool.close()


async def test_jobs_whose_workers_keep_dying_fail_in_the_end(database_url: str) -> None:
    q = await queue_on(database_url, lease_s=1.0, max_attempts=1)
    try:
        job_id = await q.enqueue(1, {"text": "x"})
        assert await q.claim() is not None
        await asyncio.sleep(1.1)
        assert await q.fail_exhausted() == 1
        job = await q.get(1, job_id)
        assert job is not None and job["state"] == "failed" and "interrupted" in job["error"]
    finally:
        await q.pool.close()


async def test_shutdown_hands_the_job_back(database_url: str) -> None:
    q = await queue_on(database_url)
    try:
        job_id = await q.enqueue(1, {"text": "x"})
        started = asyncio.Event()

        async def forever(_: dict[str, Any]) -> dict[str, Any]:
            started.set()
            await asyncio.sleep(3600)
            return {}

        worker = asyncio.create_task(q.run_worker(forever, lambda e: False))
        await asyncio.wait_for(started.wait(), 5)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
        job = await q.get(1, job_id)
        assert job is not None and job["state"] == "created"  # claimable again at once
    finally:
        await q.pool.close()


async def test_migrations_are_idempotent(database_url: str) -> None:
    for _ in range(2):
        pool = await create_pool(database_url, service="voice-service", migrations="voice_service.migrations")
        await pool.close()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version LIKE 'voice-service/%'") == 1
        await conn.execute(
            "INSERT INTO voice_jobs (id, user_id, name, payload) VALUES ($1, 1, 'tts', '{}')", uuid.uuid4()
        )
    finally:
        await conn.close()
