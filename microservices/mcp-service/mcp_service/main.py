"""mcp-service: Model Context Protocol server with network, notification and OS tools.

Served as `uvicorn mcp_service.main:app` on port 8004; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
The app is built by `mcp_service.app.create_app`.
"""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
