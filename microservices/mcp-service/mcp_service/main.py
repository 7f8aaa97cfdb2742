"""mcp-service: Model Context Protocol server with network, notification and OS tools.

Served as `uvicorn mcp_service.main:app` on port 8004; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis MCP",
    description="Model Context Protocol server with network, notification and OS tools.",
    slug="mcp",
)
