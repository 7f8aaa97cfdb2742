"""n8n-integration: n8n workflow automation and a natural-language workflow builder.

Served as `uvicorn n8n_integration.main:app` on port 8005; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
