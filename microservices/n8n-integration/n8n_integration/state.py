"""The service's state (`app.state.n8n`): built from the settings, started and stopped by
the lifespan (app.py), reached by the routes through api/deps.py; with the checks that
report on each part (/ready and GET /api/n8n/health)."""

from __future__ import annotations

import contextlib
import logging

import asyncpg

from harvis_common.db import create_pool, migrate, ping
from harvis_common.embeddings import LocalEmbeddings
from harvis_common.llm import LLMError, client_from_settings
from harvis_common.ssrf import SSRFPolicy
from harvis_common.ssrf_proxy import GuardProxy

from .knowledge import Embeddings, KnowledgeBase, LLMEmbeddings
from .limits import Limits
from .n8n_client import N8nClient, N8nError
from .settings import Settings
from .store import Store

log = logging.getLogger("n8n_integration")


class State:
    """What the routes use: settings, the n8n client, the store, the limits, the knowledge base,
    the LLM; and the vetting proxy n8n's outbound requests go through."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.public_url = settings.n8n_url.rstrip("/")
        self.n8n = N8nClient(
            settings.n8n_url,
            settings.n8n_api_key,
            timeout_s=settings.n8n_request_timeout_s,
            api_key_file=settings.n8n_api_key_file,
            owner_email=settings.n8n_owner_email,
            owner_password=settings.n8n_owner_password,
        )
        self.llm = client_from_settings(settings)
        # One SSRF policy for both checks: literal URLs at create time, every request at run time.
        self.policy = SSRFPolicy.from_setting(settings.n8n_ssrf_allowlist)
        self.proxy = GuardProxy(
            self.policy, name="n8n", host=settings.n8n_egress_proxy_host, port=settings.n8n_egress_proxy_port
        )
        self.pool: asyncpg.Pool | None = None
        self.store: Store = None  # type: ignore[assignment]
        self.limits: Limits = None  # type: ignore[assignment]
        self.kb: KnowledgeBase | None = None
        self.kb_error = "not started"
        self.embeddings: Embeddings = (
            LLMEmbeddings(self.llm, settings.n8n_embedding_model)
            if settings.n8n_embedding_backend == "llm"
            else LocalEmbeddings()
        )

    async def start(self) -> None:
        if not self.settings.database_url:
            raise RuntimeError("DATABASE_URL is not set: n8n-integration keeps workflow ownership in PostgreSQL")
        # First: n8n (started on its own) may already be sending requests to it.
        port = await self.proxy.start()
        log.info("egress proxy for n8n listening", extra={"host": self.proxy.host, "port": port})
        self.pool = await create_pool(
            self.settings.database_url, service="n8n-integration", migrations="n8n_integration.migrations"
        )
        self.store = Store(self.pool)
        self.limits = Limits(
            self.pool,
            max_workflows=self.settings.n8n_max_workflows_per_user,
            max_active=self.settings.n8n_max_active_workflows_per_user,
            max_runs_per_hour=self.settings.n8n_max_executions_per_hour,
        )
        try:
            async with self.pool.acquire() as conn:
                await migrate(conn, "n8n-integration-kb", "n8n_integration.kb_migrations")
            kb = KnowledgeBase(self.pool, self.embeddings)
            seeded = await kb.seed()
            self.kb, self.kb_error = kb, ""
            log.info("knowledge base ready", extra={"seeded": seeded, "embeddings": self.embeddings.name})
        except (asyncpg.PostgresError, LLMError, OSError, ValueError) as exc:
            # Without pgvector (or an embedding model) create-from-JSON, execute and status still work.
            self.kb_error = f"{type(exc).__name__}: {exc}"
            log.warning("knowledge base unavailable", extra={"error": self.kb_error})

    async def stop(self) -> None:
        await self.proxy.close()
        await self.n8n.close()
        await self.llm.close()
        if self.pool is not None:
            await self.pool.close()

    async def model_name(self) -> str:
        """The model that builds and reviews workflows: N8N_BUILDER_MODEL, else DEFAULT_MODEL,
        else the first one the backend lists."""
        wanted = self.settings.n8n_builder_model or self.settings.default_model
        if wanted:
            return wanted
        models = await self.llm.list_models()
        if not models:
            raise LLMError("The language model backend lists no models")
        return models[0].name

    async def discard_workflow(self, workflow_id: str) -> None:
        """Gone from n8n (if n8n still has it) and from the ownership records."""
        with contextlib.suppress(N8nError):
            await self.n8n.delete_workflow(workflow_id)
        await self.store.delete_workflow(workflow_id)

    # ------------------------------------------------------------ checks

    async def database_ready(self) -> str:
        if self.pool is None:
            raise RuntimeError("no database pool")
        return await ping(self.pool)

    async def n8n_ready(self) -> str:
        return await self.n8n.ping()

    async def proxy_ready(self) -> str:
        if not self.proxy.port:
            raise RuntimeError("the egress proxy is not listening")
        return (
            f"{self.proxy.host}:{self.proxy.port}, {self.proxy.requests} requests,"
            f" {len(self.proxy.blocked)} recently blocked"
        )

    async def kb_ready(self) -> str:
        if self.kb is None:
            raise RuntimeError(self.kb_error)
        return f"{await self.kb.count()} examples ({self.embeddings.name})"
