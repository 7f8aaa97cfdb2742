"""The browser-service app factory: the session store in the lifespan, the routers,
and readiness checks for Chromium, chromedriver and Tesseract."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from harvis_common.app import create_service_app

from .api.routes import routers
from .settings import Settings
from .store import SessionManager


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sessions = SessionManager(settings)
        await sessions.start()
        app.state.sessions = sessions
        try:
            yield
        finally:
            await sessions.stop()

    async def browser_ready() -> str:
        for path in (settings.chromium_path, settings.chromedriver_path):
            if not _executable(path):
                raise RuntimeError(f"{path} is missing (install chromium and chromium-driver)")
        return "chromium and chromedriver present"

    async def ocr_ready() -> str:
        if shutil.which("tesseract") is None:
            raise RuntimeError("tesseract is missing (install tesseract-ocr)")
        return "tesseract present"

    return create_service_app(
        settings,
        title="Harvis Browser",
        description="Headless browser sessions driven through Selenium, screenshots and screen analysis.",
        slug="browser",
        routers=routers,
        ready_checks={"browser": browser_ready, "ocr": ocr_ready},
        lifespan=lifespan,
    )
