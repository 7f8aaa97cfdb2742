"""browser-service: Headless browser sessions driven through Selenium, screenshots and screen analysis.

Served as `uvicorn browser_service.main:app` on port 8003; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis Browser",
    description="Headless browser sessions driven through Selenium, screenshots and screen analysis.",
    slug="browser",
)
