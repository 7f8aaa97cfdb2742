"""vibe-coding: Coding sessions with workspaces, sandboxed execution and a terminal.

Served as `uvicorn vibe_coding.main:app` on port 8006; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis Vibe coding",
    description="Coding sessions with workspaces, sandboxed execution and a terminal.",
    slug="vibe",
)
