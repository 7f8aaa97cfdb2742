"""What the routes depend on: the caller, the service's objects (`VoiceState` on app.state),
the quotas and the request plumbing around them (uploads, text and language checks, engine
errors as HTTP errors, mic-chat's error shape).

Per-user quotas on voice work, each in any hour: seconds of audio transcribed
(`VOICE_STT_SECONDS_PER_HOUR`), characters spoken (`VOICE_TTS_CHARS_PER_HOUR`) and voice-chat
turns (`VOICE_MIC_CHAT_TURNS_PER_HOUR`) — Whisper, Piper and the model are this service's CPU.

A recording costs its decoded length (whatever its file claims), rounded up to whole seconds,
taken before Whisper runs; speech costs its characters, taken before synthesis (or, for a TTS
job, when it is queued). The machinery is the fleet's (`harvis_common.quotas`): rolling windows
checked and counted in one atomic step — in Redis when REDIS_URL is set (keys under
VOICE_REDIS_PREFIX + "quota:", shared by every replica), else in this process."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse

from harvis_common.core_client import CoreClient
from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.quotas import Quota, QuotaExceeded, Quotas, charge

from ..audio import AudioError, audio_seconds, decode
from ..chat import Conversation, speakable
from ..engines import EngineError, Engines
from ..research import WebResearch
from ..settings import Settings
from ..speech import speak_to_file
from ..store.files import AudioStore
from ..store.jobs import JobQueue

log = logging.getLogger("voice.api")

Caller = Annotated[Identity, Depends(current_identity)]

STT_SECONDS = "stt"
TTS_CHARS = "tts"
MIC_CHAT_TURNS = "mic_chat"


def voice_quotas(settings: Settings) -> Quotas:
    return Quotas.for_service(
        [
            Quota(STT_SECONDS, "seconds of audio transcribed", settings.voice_stt_seconds_per_hour, 3600),
            Quota(TTS_CHARS, "characters of speech", settings.voice_tts_chars_per_hour, 3600),
            Quota(MIC_CHAT_TURNS, "voice chat turns", settings.voice_mic_chat_turns_per_hour, 3600),
        ],
        redis_url=settings.redis_url,
        service_prefix=settings.voice_redis_prefix,
    )


@dataclass
class VoiceState:
    settings: Settings
    engines: Engines
    store: AudioStore
    queue: JobQueue | None
    core: CoreClient
    conversation: Conversation
    research: WebResearch
    quotas: Quotas


def state(request: Request) -> VoiceState:
    return request.app.state.voice


State = Annotated[VoiceState, Depends(state)]


def job_queue(st: VoiceState) -> JobQueue:
    if st.queue is None:
        raise HTTPException(503, "The job queue is unavailable (DATABASE_URL is not set)")
    return st.queue


# ---------------------------------------------------------------- input


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The upload's bytes; 413 past `limit` (read in pieces, never more than limit + 1 MiB)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        piece = await file.read(1 << 20)
        if not piece:
            break
        size += len(piece)
        if size > limit:
            raise HTTPException(413, f"The audio file is larger than the {limit} byte limit")
        chunks.append(piece)
    return b"".join(chunks)


async def transcribe_upload(
    st: VoiceState,
    user_id: int,
    file: UploadFile,
    language: str | None,
    engine: str | None,
    also: Mapping[str, int] | None = None,
) -> Any:
    """The upload's transcript. Its decoded length is taken from the user's seconds (with the
    costs in `also`, all or none) before Whisper runs: unusable audio costs nothing."""
    stt = st.engines.stt_engine(engine)  # unknown/unavailable engine before reading the body
    data = await read_upload(file, st.settings.voice_max_upload_bytes)
    samples = await asyncio.to_thread(decode, data, st.settings.voice_max_audio_s)
    await charge(st.quotas, user_id, {STT_SECONDS: audio_seconds(samples), **(also or {})})
    return await st.engines.transcribe(stt, samples, language)


def check_text(text: str, st: VoiceState) -> str:
    text = text.strip()
    if not text:
        raise HTTPException(422, "The text to speak is empty")
    if len(text) > st.settings.voice_tts_max_chars:
        raise HTTPException(422, f"The text is longer than the {st.settings.voice_tts_max_chars} character limit")
    return text


_LANG = re.compile(r"^[a-z]{2,3}$")


def check_language(language: str | None) -> str | None:
    if language in (None, "", "auto"):
        return None
    lang = language.strip().lower()
    if not _LANG.match(lang):
        raise HTTPException(422, f"Invalid language code '{language}' (use e.g. en, de, fr)")
    return lang


def as_http(exc: AudioError | EngineError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


# ---------------------------------------------------------------- mic-chat


def mic_chat_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"status": "error", "error": message, "detail": message, "message": message}
    return JSONResponse(body, status, headers=dict(headers or {}))


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


async def speak_answer(st: VoiceState, user_id: int, answer: str, engine: str | None) -> tuple[str | None, str | None]:
    """(audio path, None), or (None, why not) — the text answer stands without its audio.
    The answer's characters are taken from the user's quota before synthesis; an engine the
    request named that refuses the input (EngineError 422) is raised."""
    spoken = speakable(answer) or answer
    try:
        st.engines.tts_engine(engine)  # an unknown engine is refused before it costs anything
        await st.quotas.take(TTS_CHARS, user_id, len(spoken))
        return await speak_to_file(st.engines, st.store, user_id, spoken, engine, None), None
    except QuotaExceeded as exc:
        return None, exc.message  # over the speech quota: the text answer still stands
    except EngineError as exc:
        if exc.status == 422 and engine:
            raise
        log.warning("mic-chat could not speak the answer", extra={"error": exc.message})
        return None, exc.message  # the text answer still stands
