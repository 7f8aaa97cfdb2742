"""voice-service: Speech-to-text, text-to-speech, voice chat, audio files and TTS jobs.

Served as `uvicorn voice_service.main:app` on port 8002; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.config import get_settings

from .app import create_app
from .settings import Settings

app = create_app(get_settings(Settings))
