"""The knowledge base as the app holds it (`app.state.knowledge`): started by the lifespan when
DATABASE_URL names a PostgreSQL with pgvector, else absent with the reason — web research
works either way, and the /api/rag routes say why they can't (503), except the two the front
end's page needs answered: the sources (empty counts) and the health badge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from harvis_common.db import create_pool, migrate
from harvis_common.embeddings import LocalEmbeddings

from ..fetch import PageFetcher
from ..settings import Settings
from .base import KnowledgeBase
from .worker import Worker

log = logging.getLogger("research.kb")


class KnowledgeState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.kb: KnowledgeBase | None = None
        self.worker: Worker | None = None
        self.error = "not started"
        self._warm: asyncio.Task[Any] | None = None

    async def start(self, fetcher: PageFetcher, embeddings: LocalEmbeddings | None = None) -> None:
        dsn = self.settings.database_url
        if not dsn:
            self.error = "DATABASE_URL is not set"
            log.info("knowledge base off: DATABASE_URL is not set")
            return
        try:
            self.pool = await create_pool(dsn, service="research-service", migrations=None)
            async with self.pool.acquire() as conn:
                await migrate(conn, "research-service", "research_service.migrations")
            kb = KnowledgeBase(self.settings, self.pool, embeddings or LocalEmbeddings())
            await kb.start()
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            # Without pgvector (or a database) web research still works; /api/rag answers 503.
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("knowledge base unavailable", extra={"error": self.error})
            if self.pool is not None:
                await self.pool.close()
                self.pool = None
            return
        self.kb, self.error = kb, ""
        self.worker = Worker(kb, dsn, fetcher)
        self.worker.start()
        self._warm = asyncio.create_task(kb.embeddings.load())  # the model loads while nobody waits
        log.info("knowledge base ready", extra={"embeddings": kb.embeddings.name})

    async def stop(self) -> None:
        if self._warm is not None:
            self._warm.cancel()
            with contextlib.suppress(BaseException):
                await self._warm
        if self.worker is not None:
            await self.worker.stop()
        if self.pool is not None:
            await self.pool.close()

    async def health(self) -> dict[str, Any]:
        """What the page's badge shows: healthy, degraded (up, but its worker or model is not)
        or unavailable (no pgvector database)."""
        if self.kb is None:
            return {"status": "unavailable", "error": self.error, "documents": 0, "chunks": 0}
        try:
            documents, chunks = await self.kb.documents.totals()
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            return {"status": "degraded", "error": f"database: {exc}", "documents": 0, "chunks": 0}
        worker = self.worker is not None and self.worker.alive and not self.worker.error
        problems = [] if worker else [f"ingestion worker: {self.worker.error if self.worker else 'not running'}"]
        return {
            "status": "healthy" if not problems else "degraded",
            "error": "; ".join(problems) or None,
            "database": "ok",
            "vector_store": "pgvector",
            "embedding_model": self.kb.embeddings.name,
            "embedding_model_loaded": self.kb.embeddings.loaded,
            "embedding_engine": self.kb.embeddings.engine,
            "worker": {"running": worker, "current_job": self.worker.current if self.worker else None},
            "documents": documents,
            "chunks": chunks,
        }

    async def ready(self) -> str:
        """A readiness check that never fails the service: the knowledge base is optional."""
        return "off: " + self.error if self.kb is None else (await self.health())["status"]
