"""The n8n-integration app, built from its settings (`create_app`); main.py makes the one
uvicorn serves. Tests build their own with their own settings."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from harvis_common.app import create_service_app
from harvis_common.db import create_pool, migrate, ping
from harvis_common.llm import LLMError, client_from_settings
from harvis_common.ssrf import SSRFPolicy
from harvis_common.ssrf_proxy import GuardProxy

from .knowledge import Embeddings, KnowledgeBase, LLMEmbeddings, LocalEmbeddings, Match
from .limits import Limits
from .n8n_client import N8nClient
from .routes import router
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
        wanted = self.settings.n8n_builder_model or self.settings.default_model
        if wanted:
            return wanted
        models = await self.llm.list_models()
        if not models:
            raise LLMError("The language model backend lists no models")
        return models[0].name

    async def llm_advice(self, wf: dict[str, Any], similar: list[Match]) -> str:
        shots = "\n".join(f"- {m.name}: {m.description} (nodes: {', '.join(m.node_types)})" for m in similar)
        messages = [
            {
                "role": "system",
                "content": "You review n8n workflows. Give at most 5 short, concrete improvement suggestions"
                " as a bulleted list.",
            },
            {
                "role": "user",
                "content": f"Similar stored workflows:\n{shots}\n\nWorkflow to improve:\n{json.dumps(wf)[:12000]}",
            },
        ]
        result = await self.llm.chat(messages, await self.model_name(), temperature=0.2, max_tokens=400)
        return result.content.strip()


def create_app(settings: Settings) -> FastAPI:
    state = State(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.n8n = state
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    async def db_ready() -> str:
        if state.pool is None:
            raise RuntimeError("no database pool")
        return await ping(state.pool)

    async def n8n_ready() -> str:
        return await state.n8n.ping()

    async def proxy_ready() -> str:
        if not state.proxy.port:
            raise RuntimeError("the egress proxy is not listening")
        return (
            f"{state.proxy.host}:{state.proxy.port}, {state.proxy.requests} requests,"
            f" {len(state.proxy.blocked)} recently blocked"
        )

    async def kb_ready() -> str:
        if state.kb is None:
            raise RuntimeError(state.kb_error)
        return f"{await state.kb.count()} examples ({state.embeddings.name})"

    app = create_service_app(
        settings,
        title="Harvis n8n integration",
        description="n8n workflow automation and a natural-language workflow builder.",
        slug="n8n",
        routers=[router],
        # Ready = can serve (the database). n8n and the knowledge base are reported by
        # GET /api/n8n/health: the service answers (503 on those routes) while n8n starts.
        ready_checks={"database": db_ready, "egress_proxy": proxy_ready},
        lifespan=lifespan,
    )
    app.state.dependency_checks = {
        "database": db_ready,
        "n8n": n8n_ready,
        "knowledge_base": kb_ready,
        "egress_proxy": proxy_ready,
    }
    return app
