"""The artifact-renderer: the rendering worker as a process of its own.

    uvicorn --factory core_api.artifacts.renderer:main --port 8007

core-api's replicas queue artifacts (`generating` rows in PostgreSQL) and, in the container
fleet, render nothing themselves (ARTIFACT_RENDER_WORKERS=0): the libraries that write XLSX,
DOCX, PPTX and PDF live only in this process's image, and renders (CPU-bound, holding the GIL)
don't slow the gateway's event loop. This process claims the jobs (worker.py: leases, retries,
expiry), woken by each new job's NOTIFY, and answers only `/health`, `/ready` (its database)
and `/metrics` (render counts and times) — no user ever calls it. Natively (`make dev`)
core-api keeps rendering in-process: one machine, one process less.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from harvis_common.app import VERSION
from harvis_common.config import ServiceSettings, get_settings
from harvis_common.db import create_pool, ping
from harvis_common.errors import install_error_handlers
from harvis_common.health import health_router
from harvis_common.logging import configure_logging
from harvis_common.metrics import metrics_router

from ..settings import ArtifactSettings, DatabaseSettings
from .service import Artifacts

SCHEMA_OWNER = "core-api"
# A render per worker thread, the NOTIFY listener, and the expiry sweep.
POOL_EXTRA = 2


class RendererSettings(ServiceSettings, DatabaseSettings, ArtifactSettings):
    service_name: str = "artifact-renderer"


def create_renderer_app(settings: RendererSettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    if not settings.database_url:
        raise RuntimeError("artifact-renderer cannot start: DATABASE_URL not set (see .env.example)")
    if not settings.artifact_render_workers:
        raise RuntimeError("artifact-renderer cannot start: ARTIFACT_RENDER_WORKERS is 0")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # core-api's schema, recorded as core-api's: whichever of the two starts first makes it.
        pool = await create_pool(
            settings.database_url,
            service=SCHEMA_OWNER,
            migrations="core_api.migrations",
            min_size=settings.db_pool_min,
            max_size=max(settings.db_pool_max, settings.artifact_render_workers + POOL_EXTRA),
        )
        artifacts = Artifacts(pool, settings)
        artifacts.start(listen=True)
        app.state.pool, app.state.worker = pool, artifacts.worker
        try:
            yield
        finally:
            await artifacts.stop()
            await pool.close()

    async def db_ready() -> str:
        return await ping(app.state.pool)

    async def listening() -> str:
        if not app.state.worker.listening.is_set():
            raise RuntimeError("not listening for new jobs (polling every second)")
        return "ok"

    app = FastAPI(title="Harvis artifact-renderer", version=VERSION, lifespan=lifespan, openapi_url=None)
    install_error_handlers(app)
    checks = {"database": db_ready, "job_notifications": listening}
    app.include_router(health_router(settings.service_name, VERSION, checks))
    app.include_router(metrics_router())
    return app


def main() -> FastAPI:
    """The app from the environment (uvicorn's --factory)."""
    return create_renderer_app(get_settings(RendererSettings))
