"""n8n-integration: n8n workflow automation and a natural-language workflow builder.

Served as `uvicorn n8n_integration.main:app` on port 8005; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis n8n integration",
    description="n8n workflow automation and a natural-language workflow builder.",
    slug="n8n",
)
