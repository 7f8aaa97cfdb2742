"""The artifacts' objects together (app.state.artifacts): the store, the worker, and making an
artifact (a `generating` row, then the worker woken), as POST /api/artifacts and chat do."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from ..store.artifacts import ArtifactStore
from .specs import ArtifactCreate
from .worker import ArtifactWorker


class Artifacts:
    def __init__(self, pool: asyncpg.Pool, settings: Any) -> None:
        self.store = ArtifactStore(pool, settings.artifact_storage_quota_mb * 1024 * 1024, settings.artifact_ttl_days)
        self.worker = ArtifactWorker(
            self.store, workers=settings.artifact_render_workers, render_timeout_s=settings.artifact_render_timeout_s
        )

    def start(self, *, listen: bool = False) -> None:
        """The worker's loops (none with ARTIFACT_RENDER_WORKERS=0); `listen`: woken by NOTIFY too."""
        self.worker.start(listen=listen)

    async def stop(self) -> None:
        await self.worker.stop()

    async def create(self, user_id: int, req: ArtifactCreate, session_id: str | None = None) -> dict[str, Any]:
        """The new artifact (`generating`); store.QuotaExceeded past the user's quota."""
        created = await self.store.create(
            user_id,
            req.type,
            req.title,
            req.stored_spec(),
            description=req.description,
            session_id=uuid.UUID(session_id) if session_id else None,
        )
        self.worker.wake()
        return created
