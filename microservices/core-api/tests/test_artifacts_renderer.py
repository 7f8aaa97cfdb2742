"""The artifact-renderer process (artifacts/renderer.py) renders what core-api queues: a new
job's NOTIFY wakes it at once (its polling alone would take an hour here), and its app
answers /ready and /metrics with the renders counted."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from artifact_support import SPECS, docx_paragraphs, xlsx_rows
from conftest import make_settings
from test_artifacts_worker import new_user

from core_api.artifacts.renderer import RendererSettings, create_renderer_app
from core_api.artifacts.service import Artifacts
from core_api.artifacts.specs import ArtifactCreate
from core_api.artifacts.worker import ArtifactWorker
from core_api.store.artifacts import ArtifactStore

QUOTA = 50 * 1024 * 1024


async def wait_ready(pool: asyncpg.Pool, artifact_id: str, timeout_s: float = 20) -> asyncpg.Record:
    row = None
    for _ in range(int(timeout_s / 0.05)):
        row = await pool.fetchrow("SELECT status, file FROM artifacts WHERE id = $1", uuid.UUID(artifact_id))
        if row["status"] != "generating":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {row['status'] if row else 'missing'} after {timeout_s} s")


async def test_a_new_jobs_notify_wakes_a_renderer_elsewhere(pool: asyncpg.Pool) -> None:
    # Two stores as two processes: core-api queues (no worker of its own), the renderer listens.
    queued_by = ArtifactStore(pool, QUOTA, 30)
    renderer = ArtifactWorker(ArtifactStore(pool, QUOTA, 30), workers=1, render_timeout_s=30, poll_s=3600)
    renderer.start(listen=True)
    try:
        await asyncio.wait_for(renderer.listening.wait(), 10)
        await asyncio.sleep(0.2)  # the listener's own first look for queued jobs is over
        job = await queued_by.create(await new_user(pool), "document", "notified", SPECS["document"])
        row = await wait_ready(pool, job["id"])
    finally:
        await renderer.stop()
    assert row["status"] == "ready"
    assert ("Heading 1", "Quarterly report") in docx_paragraphs(row["file"])[0]


async def test_core_api_without_render_workers_queues_for_the_renderer(pool: asyncpg.Pool) -> None:
    """core-api in containers: ARTIFACT_RENDER_WORKERS=0 (its image has no rendering
    libraries) starts and makes `generating` rows, which the renderer elsewhere renders."""
    core_api = Artifacts(pool, make_settings(artifact_render_workers=0))
    core_api.start()
    renderer = ArtifactWorker(ArtifactStore(pool, QUOTA, 30), workers=1, render_timeout_s=30, poll_s=3600)
    renderer.start(listen=True)
    try:
        await asyncio.wait_for(renderer.listening.wait(), 10)
        request = ArtifactCreate(type="spreadsheet", title="queued", spec=SPECS["spreadsheet"])
        made = await core_api.create(await new_user(pool), request)
        assert made["status"] == "generating"
        row = await wait_ready(pool, made["id"])
    finally:
        await renderer.stop()
        await core_api.stop()
    assert row["status"] == "ready" and xlsx_rows(row["file"])[0][1] == ["b", 3, "=B1+B2"]


async def test_listening_resumes_after_the_connection_is_lost(pool: asyncpg.Pool) -> None:
    renderer = ArtifactWorker(ArtifactStore(pool, QUOTA, 30), workers=1, render_timeout_s=30, poll_s=3600)
    renderer.start(listen=True)
    try:
        await asyncio.wait_for(renderer.listening.wait(), 10)
        # As a PostgreSQL restart does to it: the listening session ends.
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE query = 'LISTEN \"harvis_artifact_jobs\"' AND datname = current_database()"
        )
        assert killed >= 1
        for _ in range(100):
            if not renderer.listening.is_set():
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(renderer.listening.wait(), 10)
        await asyncio.sleep(0.2)
        job = await ArtifactStore(pool, QUOTA, 30).create(await new_user(pool), "pdf", "after", SPECS["pdf"])
        assert (await wait_ready(pool, job["id"]))["status"] == "ready"
    finally:
        await renderer.stop()


async def test_the_renderer_app_is_ready_renders_and_counts(pool: asyncpg.Pool, database_url: str) -> None:
    app = create_renderer_app(RendererSettings(database_url=database_url, artifact_render_workers=1))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
            await asyncio.wait_for(app.state.worker.listening.wait(), 10)
            ready = await client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert {c["name"] for c in ready.json()["checks"]} == {"database", "job_notifications"}
            job = await ArtifactStore(pool, QUOTA, 30).create(
                await new_user(pool), "presentation", "counted", SPECS["presentation"]
            )
            assert (await wait_ready(pool, job["id"]))["status"] == "ready"
            metrics = (await client.get("/metrics")).text
    assert 'harvis_artifact_renders_total{outcome="ready",type="presentation"}' in metrics
    assert 'harvis_artifact_render_seconds_count{type="presentation"}' in metrics
