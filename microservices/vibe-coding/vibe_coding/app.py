"""The vibe-coding app, built from explicit settings (main.py builds it from the environment)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from harvis_common.app import create_service_app
from harvis_common.db import create_pool, ping

from .api.routes import routers
from .assist import SharedLLMModel
from .sandbox import choose_backend
from .sessions import Sessions
from .settings import Settings
from .workspace import prepare_root

log = logging.getLogger("harvis.vibe")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set: vibe-coding keeps its sessions in PostgreSQL")
        pool = await create_pool(settings.database_url, service="vibe-coding", migrations="vibe_coding.migrations")
        root = await asyncio.to_thread(prepare_root, Path(settings.vibe_workspace_dir))
        sandbox = choose_backend(
            settings.vibe_sandbox_backend,
            docker_url=settings.vibe_docker_url,
            image_template=settings.vibe_docker_image,
            workspace_dir=root,
            host_workspace_dir=settings.vibe_docker_workspace_host_path,
        )
        model = SharedLLMModel(settings)
        sessions = app.state.sessions = Sessions(settings, pool, sandbox, model)
        # Deletions an earlier run left halfway hold sandbox uids: finish them in the background.
        leftovers = asyncio.create_task(sessions.finish_deletions())
        log.info("vibe-coding started", extra={"backend": sandbox.name, "workspace_dir": str(root)})
        try:
            yield
        finally:
            leftovers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leftovers
            await sessions.close()
            await pool.close()

    async def database_ready() -> str:
        return await ping(app.state.sessions.pool)

    async def sandbox_ready() -> str:
        sessions: Sessions = app.state.sessions
        return await sessions.sandbox.probe(sessions.root / ".probe", sessions.probe_uid)

    app = create_service_app(
        settings,
        title="Harvis Vibe coding",
        description="Coding sessions with workspaces, sandboxed execution and a terminal.",
        slug="vibe",
        routers=routers,
        ready_checks={"database": database_ready, "sandbox": sandbox_ready},
        lifespan=lifespan,
    )
    return app
