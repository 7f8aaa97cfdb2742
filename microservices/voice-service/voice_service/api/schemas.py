"""Request bodies of voice-service's JSON routes (uploads are multipart forms)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TTSIn(BaseModel):
    text: str = Field(max_length=100_000)
    voice: str | None = Field(default=None, max_length=200)
    engine: str | None = Field(default=None, max_length=50)
    format: Literal["wav"] = "wav"


class TTSJobIn(BaseModel):
    text: str = Field(max_length=100_000)
    voice_id: str | None = Field(default=None, max_length=200)
    tts_engine: str | None = Field(default=None, max_length=50)
