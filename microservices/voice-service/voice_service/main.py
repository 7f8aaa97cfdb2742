"""voice-service: Speech-to-text, text-to-speech, voice chat, audio files and TTS jobs.

Served as `uvicorn voice_service.main:app` on port 8002; reachable only through
core-api's gateway (every route but /health and /ready needs X-Internal-Auth).
"""

from harvis_common.app import create_service_app
from harvis_common.config import get_settings

from .settings import Settings

settings = get_settings(Settings)

app = create_service_app(
    settings,
    title="Harvis Voice",
    description="Speech-to-text, text-to-speech, voice chat, audio files and TTS jobs.",
    slug="voice",
)
