"""The rendering worker against PostgreSQL: a job whose worker died (a restart) is taken again
after the lease and rendered; one interrupted too often ends `failed`; a live claim is left
alone; two workers never render the same job; a render past the timeout ends `failed`; expired
artifacts are deleted with their files; the quota holds at the end of a render."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from artifact_support import SPECS, xlsx_rows

from core_api.artifacts.worker import ArtifactWorker
from core_api.store.artifacts import MAX_ATTEMPTS, ArtifactStore


async def new_user(pool: asyncpg.Pool) -> int:
    name = f"w{uuid.uuid4().hex[:12]}"
    return await pool.fetchval(
        "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x') RETURNING id", name, f"{name}@e.com"
    )


async def status(pool: asyncpg.Pool, artifact_id: str) -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT status, error_message, attempts, file, claimed_at FROM artifacts WHERE id = $1", uuid.UUID(artifact_id)
    )


@pytest.fixture
def store(pool: asyncpg.Pool) -> ArtifactStore:
    return ArtifactStore(pool, quota_bytes=50 * 1024 * 1024, ttl_days=30)


async def test_a_restart_resumes_or_fails_jobs(pool: asyncpg.Pool, store: ArtifactStore) -> None:
    user = await new_user(pool)
    dead = await store.create(user, "spreadsheet", "dead worker's", SPECS["spreadsheet"])
    worn = await store.create(user, "spreadsheet", "interrupted too often", SPECS["spreadsheet"])
    live = await store.create(user, "spreadsheet", "claimed just now", SPECS["spreadsheet"])
    # As the rows are after a replica died mid-render: claimed an hour ago (or just now, for `live`).
    await pool.execute(
        "UPDATE artifacts SET claimed_at = now() - interval '1 hour', attempts = 1 WHERE id = $1",
        uuid.UUID(dead["id"]),
    )
    await pool.execute(
        "UPDATE artifacts SET claimed_at = now() - interval '1 hour', attempts = $2 WHERE id = $1",
        uuid.UUID(worn["id"]),
        MAX_ATTEMPTS,
    )
    await pool.execute("UPDATE artifacts SET claimed_at = now(), attempts = 1 WHERE id = $1", uuid.UUID(live["id"]))

    worker = ArtifactWorker(store, workers=1, render_timeout_s=30)  # lease: 60 s
    try:
        while await worker.run_once():
            pass
    finally:
        await worker.stop()
    resumed = await status(pool, dead["id"])
    assert resumed["status"] == "ready" and resumed["attempts"] == 2 and resumed["claimed_at"] is None
    assert xlsx_rows(resumed["file"])[0][1] == ["b", 3, "=B1+B2"]
    worn_row = await status(pool, worn["id"])
    assert worn_row["status"] == "failed" and "interrupted" in worn_row["error_message"]
    assert (await status(pool, live["id"]))["status"] == "generating"  # its worker is alive


async def test_two_workers_never_take_the_same_job(pool: asyncpg.Pool, store: ArtifactStore) -> None:
    user = await new_user(pool)
    ids = [(await store.create(user, "document", f"d{i}", SPECS["document"]))["id"] for i in range(6)]
    a = ArtifactWorker(store, workers=2, render_timeout_s=30)
    b = ArtifactWorker(ArtifactStore(pool, 50 * 1024 * 1024, 30), workers=2, render_timeout_s=30)
    a.start()
    b.start()
    try:
        for _ in range(400):
            rows = [await status(pool, i) for i in ids]
            if all(r["status"] == "ready" for r in rows):
                break
            await asyncio.sleep(0.05)
    finally:
        await a.stop()
        await b.stop()
    assert [r["attempts"] for r in rows] == [1] * 6 and all(r["status"] == "ready" for r in rows)


async def test_a_render_past_the_timeout_fails(pool: asyncpg.Pool, store: ArtifactStore) -> None:
    user = await new_user(pool)
    rows = [[f"n{i}", i, f"=B{i + 1}*2"] for i in range(4000)]
    slow = await store.create(user, "spreadsheet", "slow", {"sheets": [{"rows": rows}] * 3})
    worker = ArtifactWorker(store, workers=1, render_timeout_s=0.001)
    try:
        assert await worker.run_once()
    finally:
        await worker.stop()
    row = await status(pool, slow["id"])
    assert row["status"] == "failed" and row["error_message"].startswith("Rendering took longer than")


async def test_the_quota_holds_when_a_render_ends(pool: asyncpg.Pool) -> None:
    user = await new_user(pool)
    tight = ArtifactStore(pool, quota_bytes=3_000, ttl_days=30)  # the spec fits, the file (~5 KB) doesn't
    job = await tight.create(user, "spreadsheet", "too big", SPECS["spreadsheet"])
    worker = ArtifactWorker(tight, workers=1, render_timeout_s=30)
    try:
        assert await worker.run_once()
    finally:
        await worker.stop()
    row = await status(pool, job["id"])
    assert row["status"] == "failed" and "quota" in row["error_message"] and row["file"] is None


async def test_expired_artifacts_are_deleted(pool: asyncpg.Pool, store: ArtifactStore) -> None:
    user = await new_user(pool)
    old = await store.create(user, "code", "old", SPECS["code"])
    new = await store.create(user, "code", "new", SPECS["code"])
    assert new["expires_at"] is not None
    await pool.execute(
        "UPDATE artifacts SET expires_at = now() - interval '1 second' WHERE id = $1", uuid.UUID(old["id"])
    )
    assert await store.expire() >= 1
    assert await store.get(user, uuid.UUID(old["id"])) is None
    assert await store.get(user, uuid.UUID(new["id"])) is not None
    forever = ArtifactStore(pool, quota_bytes=10**9, ttl_days=0)
    assert (await forever.create(user, "code", "kept", SPECS["code"]))["expires_at"] is None
