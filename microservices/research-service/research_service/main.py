"""research-service: Web search, page extraction, research chat with citations, fact-checking and comparative research.

Served as `uvicorn research_service.main:app` on port 8001; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from __future__ import annotations

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
