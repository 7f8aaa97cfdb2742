"""core-api: auth and users, administration, the health overview, and the gateway to every service.

Served as `uvicorn core_api.main:app` on port 8000. `app` is the gateway, a
raw ASGI callable: proxied prefixes go straight to their service; everything
else falls through to the FastAPI app (`api`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from harvis_common.app import VERSION
from harvis_common.config import get_settings
from harvis_common.db import create_pool, ping
from harvis_common.errors import install_error_handlers
from harvis_common.health import health_router
from harvis_common.logging import configure_logging

from . import chat, internal
from .admin.routes import router as admin_router
from .auth.routes import router as auth_router
from .auth.service import AuthService
from .gateway.openapi import FleetOpenAPI, openapi_router
from .service_router import Gateway, health_overview_router
from .settings import Settings

settings = get_settings(Settings)
configure_logging(settings.service_name, settings.log_level)
log = logging.getLogger("harvis.core")


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
    app.state.pool, app.state.redis, app.state.auth = pool, redis, auth
    chat.start(app, settings, pool)
    gateway.attach(auth, internal.start(app, settings))
    await gateway.start()
    log.info("core-api ready")
    try:
        yield
    finally:
        await gateway.stop()
        await chat.stop(app)
        await auth.stop()
        if redis is not None:
            await redis.aclose()
        await pool.close()


async def _db_ready() -> str:
    return await ping(api.state.pool)


async def _redis_ready() -> str:
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
api.include_router(health_router(settings.service_name, VERSION, {"database": _db_ready, "redis": _redis_ready}))
api.include_router(auth_router)
api.include_router(admin_router)
chat.install(api)
internal.install(api)

gateway = Gateway(api, settings)
api.include_router(health_overview_router(gateway))
api.include_router(openapi_router(FleetOpenAPI(api, gateway)))
app = gateway
