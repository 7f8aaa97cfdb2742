"""browser-service: Headless browser sessions driven through Selenium, screenshots and screen analysis.

Served as `uvicorn browser_service.main:app` on port 8003; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .routes import router
from .sessions import SessionManager
from .settings import Settings

settings = get_settings(Settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sessions = SessionManager(settings)
    await sessions.start()
    app.state.sessions = sessions
    try:
        yield
    finally:
        await sessions.stop()


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


async def browser_ready() -> str:
    for path in (settings.chromium_path, settings.chromedriver_path):
        if not _executable(path):
            raise RuntimeError(f"{path} is missing (install chromium and chromium-driver)")
    return "chromium and chromedriver present"


async def ocr_ready() -> str:
    if shutil.which("tesseract") is None:
        raise RuntimeError("tesseract is missing (install tesseract-ocr)")
    return "tesseract present"


app = create_service_app(
    settings,
    title="Harvis Browser",
    description="Headless browser sessions driven through Selenium, screenshots and screen analysis.",
    slug="browser",
    routers=[router],
    ready_checks={"browser": browser_ready, "ocr": ocr_ready},
    lifespan=lifespan,
)
