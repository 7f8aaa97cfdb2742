"""The app factory every service is built with, so they all behave alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI

from .config import ServiceSettings
from .diagnostics import diagnostics_router
from .errors import install_error_handlers
from .health import OPEN_PATHS, ReadyCheck, health_router
from .internal_auth import InternalVerifier
from .logging import configure_logging
from .metrics import METRICS_PATH, MetricsMiddleware, metrics_router
from .middleware import ServiceMiddleware
from .tracing import configure_tracing

VERSION = "0.1.0"


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    slug: str,
    routers: Iterable[APIRouter] = (),
    ready_checks: dict[str, ReadyCheck] | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with JSON errors and logs, health probes, diagnostics, Prometheus
    metrics at `/metrics`, traces (when OTEL_* asks for them) and internal-auth enforcement
    on every route but `/health`, `/ready` and `/metrics`."""
    configure_logging(settings.service_name, settings.log_level)
    configure_tracing(settings.service_name)
    app = FastAPI(
        title=title,
        description=description,
        version=VERSION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    verifier = (
        InternalVerifier(settings.internal_auth_public_key, settings.service_name, settings.internal_auth_leeway_s)
        if settings.internal_auth_public_key
        else None  # every protected request then gets 401: fail closed
    )

    async def internal_auth_ready() -> str:
        if verifier is None:
            raise RuntimeError("INTERNAL_AUTH_PUBLIC_KEY is not set")
        return "public key loaded"

    checks = {"internal_auth": internal_auth_ready, **(ready_checks or {})}
    app.include_router(health_router(settings.service_name, VERSION, checks))
    app.include_router(diagnostics_router(slug, settings.service_name))
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    app.add_middleware(ServiceMiddleware, verifier=verifier, open_paths=(*OPEN_PATHS, METRICS_PATH))
    # Outermost: it times the whole request, auth refusals included.
    app.add_middleware(MetricsMiddleware, skip_paths=frozenset(OPEN_PATHS))
    return app
