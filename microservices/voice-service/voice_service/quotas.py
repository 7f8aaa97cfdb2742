"""Per-user quotas on voice work, each in any hour: seconds of audio transcribed
(`VOICE_STT_SECONDS_PER_HOUR`), characters spoken (`VOICE_TTS_CHARS_PER_HOUR`) and voice-chat
turns (`VOICE_MIC_CHAT_TURNS_PER_HOUR`) — Whisper, Piper and the model are this service's CPU.

A recording costs its decoded length (whatever its file claims), rounded up to whole seconds,
taken before Whisper runs; speech costs its characters, taken before synthesis (or, for a TTS
job, when it is queued). The machinery is the fleet's (`harvis_common.quotas`): rolling windows
checked and counted in one atomic step — in Redis when REDIS_URL is set (keys under
VOICE_REDIS_PREFIX + "quota:", shared by every replica), else in this process."""

from __future__ import annotations

import math

import numpy as np

from harvis_common.quotas import Quota, Quotas

from .audio import SAMPLE_RATE
from .settings import Settings

STT_SECONDS = "stt"
TTS_CHARS = "tts"
MIC_CHAT_TURNS = "mic_chat"


def voice_quotas(settings: Settings) -> Quotas:
    return Quotas(
        [
            Quota(STT_SECONDS, "seconds of audio transcribed", settings.voice_stt_seconds_per_hour, 3600),
            Quota(TTS_CHARS, "characters of speech", settings.voice_tts_chars_per_hour, 3600),
            Quota(MIC_CHAT_TURNS, "voice chat turns", settings.voice_mic_chat_turns_per_hour, 3600),
        ],
        redis_url=settings.redis_url,
        prefix=settings.voice_redis_prefix + "quota:",
    )


def audio_seconds(samples: np.ndarray) -> int:
    """What decoded audio (16 kHz mono) costs: its length in whole seconds, rounded up."""
    return max(1, math.ceil(samples.size / SAMPLE_RATE))
