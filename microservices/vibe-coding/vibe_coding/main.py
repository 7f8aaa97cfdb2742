"""vibe-coding: Coding sessions with workspaces, sandboxed execution and a terminal.

Served as `uvicorn vibe_coding.main:app` on port 8006; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
