"""The n8n-integration app, built from its settings (`create_app`); main.py makes the one
uvicorn serves. Tests build their own with their own settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from harvis_common.app import create_service_app

from .api.routes import routers
from .settings import Settings
from .state import State


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

    app = create_service_app(
        settings,
        title="Harvis n8n integration",
        description="n8n workflow automation and a natural-language workflow builder.",
        slug="n8n",
        routers=routers,
        # Ready = can serve (the database). n8n and the knowledge base are reported by
        # GET /api/n8n/health: the service answers (503 on those routes) while n8n starts.
        ready_checks={"database": state.database_ready, "egress_proxy": state.proxy_ready},
        lifespan=lifespan,
    )
    app.state.dependency_checks = {
        "database": state.database_ready,
        "n8n": state.n8n_ready,
        "knowledge_base": state.kb_ready,
        "egress_proxy": state.proxy_ready,
    }
    return app
