"""browser-service: Headless browser sessions driven through Selenium, screenshots and screen analysis.

Served as `uvicorn browser_service.main:app` on port 8003; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
The app is built by `browser_service.app.create_app`.
"""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
