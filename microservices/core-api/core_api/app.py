"""core-api: auth and users, administration, chat, the health overview, and the gateway to
every service.

`create_app(settings)` returns the gateway, a raw ASGI callable: proxied prefixes go straight
to their service; everything else falls through to core-api's FastAPI app (`gateway.api`).
That is what uvicorn serves (`core_api.main:app`, port 8000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI

from harvis_common.app import VERSION
from harvis_common.db import create_pool, ping
from harvis_common.errors import install_error_handlers
from harvis_common.health import health_router
from harvis_common.internal_auth import InternalSigner
from harvis_common.logging import configure_logging
from harvis_common.metrics import metrics_router
from harvis_common.ssrf import SSRFPolicy
from harvis_common.tracing import configure_tracing

from .api.routes import routers
from .api.routes.health import health_overview_router
from .artifacts.service import Artifacts
from .audit import AuditLog
from .auth.metrics import AUTH_METRICS
from .auth.service import AuthService
from .chat.backend import LLMBackend
from .chat.key_cipher import KeyCipher
from .chat.knowledge import KnowledgeClient
from .chat.quotas import chat_quotas
from .gateway import Gateway
from .gateway.openapi import FleetOpenAPI, openapi_router
from .internal.callers import InternalTokenChecker
from .settings import Settings, replica_urls
from .store.chat import ChatStore

log = logging.getLogger("harvis.core")
chat_log = logging.getLogger("harvis.chat")


def _require_secrets(s: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("DATABASE_URL", s.database_url),
            ("JWT_SECRET", s.jwt_secret),
            ("INTERNAL_AUTH_PRIVATE_KEY", s.internal_auth_private_key),
        )
        if not value
    ]
    if missing:
        raise RuntimeError(f"core-api cannot start: {', '.join(missing)} not set (see .env.example)")


def start_chat(app: FastAPI, settings: Settings, pool: asyncpg.Pool) -> None:
    """The chat's objects on app.state (api/deps.py reads them), with the artifacts' (chat makes
    them too) and their rendering worker, started here."""
    state: Any = app.state
    state.chat_settings = settings
    state.chat_store = ChatStore(pool)
    state.llm = LLMBackend(settings)
    state.background_tasks = set()
    state.chat_quotas = chat_quotas(settings)
    # Grounded chat: research-service's knowledge base, searched as the turn's user (on any of
    # its replicas: the search is stateless).
    state.knowledge = KnowledgeClient(
        replica_urls(settings.research_service_url),
        timeout_s=settings.chat_kb_timeout_s,
        k=settings.chat_kb_max_excerpts,
        min_similarity=settings.chat_kb_min_similarity,
    )
    # Artifacts (POST /api/artifacts, and the files chat makes): the store and the rendering worker.
    state.artifacts = Artifacts(pool, settings)
    state.artifacts.start()
    # Users' own api_url (chat/provider_keys.py): only the public internet, as for research and the browser.
    state.provider_url_policy = SSRFPolicy()
    state.key_cipher = KeyCipher(settings.api_key_encryption_key) if settings.api_key_encryption_key else None
    if state.key_cipher is None:
        chat_log.warning("API_KEY_ENCRYPTION_KEY is not set: /api/user/api-keys cannot store keys")
    base = settings.llm_base_url
    chat_log.info(
        "chat backend", extra={"provider": settings.llm_provider, "url": base, "default_model": settings.default_model}
    )


async def stop_chat(app: FastAPI) -> None:
    state: Any = app.state
    tasks = set(getattr(state, "background_tasks", ()))
    if tasks:  # partial answers still being saved
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, timeout=5)
    artifacts = getattr(state, "artifacts", None)
    if artifacts is not None:
        await artifacts.stop()
    llm = getattr(state, "llm", None)
    if llm is not None:
        await llm.close()
    quotas = getattr(state, "chat_quotas", None)
    if quotas is not None:
        await quotas.close()
    knowledge = getattr(state, "knowledge", None)
    if knowledge is not None:
        await knowledge.close()


def start_internal(app: FastAPI, settings: Settings) -> InternalSigner:
    """The checker for tokens services send back to `/internal/…`, and the signer every
    internal token is minted with (the gateway's and token exchange's)."""
    state: Any = app.state
    state.internal_signer = InternalSigner(settings.internal_auth_private_key, settings.internal_auth_ttl_s)
    state.internal_checker = InternalTokenChecker(
        settings.internal_auth_private_key,
        settings.internal_history_token_max_age_s,
        settings.internal_auth_leeway_s,
    )
    return state.internal_signer


def create_app(settings: Settings) -> Gateway:
    """core-api's FastAPI app (`.api`) inside the gateway uvicorn serves."""
    configure_logging(settings.service_name, settings.log_level)
    configure_tracing(settings.service_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _require_secrets(settings)
        pool = await create_pool(
            settings.database_url,
            service=settings.service_name,
            migrations="core_api.migrations",
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
        )
        redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
        auth = AuthService(settings, pool, redis)
        await auth.start()
        AUTH_METRICS.attach(auth.counters)
        app.state.pool, app.state.redis, app.state.auth = pool, redis, auth
        start_chat(app, settings, pool)
        gateway.attach(auth, start_internal(app, settings))
        app.state.audit = gateway.audit = AuditLog(pool, settings.audit_retention_days)
        await gateway.audit.start()
        await gateway.start()
        log.info("core-api ready")
        try:
            yield
        finally:
            await gateway.stop()
            await app.state.audit.stop()
            await stop_chat(app)
            await auth.stop()
            if redis is not None:
                await redis.aclose()
            await pool.close()

    async def db_ready() -> str:
        return await ping(api.state.pool)

    async def redis_ready() -> str:
        if api.state.redis is None:
            return "not configured (in-process rate limits)"
        await api.state.redis.ping()
        return "ok"

    api = FastAPI(
        title="Harvis core-api",
        description="Authentication, users, chat and the gateway to every Harvis service.",
        version=VERSION,
        lifespan=lifespan,
        # /api/docs and /api/openapi.json show the whole fleet (gateway/openapi.py), not only
        # core-api: FastAPI's own routes for them are off.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(api)
    api.include_router(health_router(settings.service_name, VERSION, {"database": db_ready, "redis": redis_ready}))
    api.include_router(metrics_router())  # :8000/metrics; nginx routes only /api/ and /health here
    for router in routers:
        api.include_router(router)

    gateway = Gateway(api, settings)
    api.include_router(health_overview_router(gateway))
    api.include_router(openapi_router(FleetOpenAPI(api, gateway)))
    return gateway
