"""research-service: Web search, page extraction, research chat with citations, fact-checking and comparative research.

Served as `uvicorn research_service.main:app` on port 8001; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis Research",
    description="Web search, page extraction, research chat with citations, fact-checking and comparative research.",
    slug="research",
)
