"""voice-service's routers, one per area."""

from . import audio, jobs, mic_chat, stt, tts

routers = [stt.router, tts.router, audio.router, jobs.router, mic_chat.router]
