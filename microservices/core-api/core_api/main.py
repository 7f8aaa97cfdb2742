"""The instance uvicorn serves: `uvicorn core_api.main:app` on port 8000 (the gateway, with
core-api's FastAPI app behind it: app.py)."""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
