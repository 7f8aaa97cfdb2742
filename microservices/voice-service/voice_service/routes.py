"""voice-service's HTTP API (shapes: shared design contract, voice-service section).

Speech to text, text to speech and voice chat take from the caller's quotas (`quotas.py`)
once the input is known to be usable and before the engines run: over one, a JSON 429 +
Retry-After."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.identity import current_identity
from harvis_common.internal_auth import HEADER, Identity
from harvis_common.llm import LLMError
from harvis_common.quotas import QUOTA_RESPONSES, QuotaExceeded, Quotas, charge

from .audio import AudioError, decode, wav_bytes
from .chat import CONTEXT_MESSAGES, Conversation, speakable
from .engines import EngineError, Engines, Speech
from .files import AudioStore
from .jobs import JobQueue
from .quotas import MIC_CHAT_TURNS, STT_SECONDS, TTS_CHARS, audio_seconds
from .research import Findings, ResearchUnavailable, WebResearch
from .settings import Settings

log = logging.getLogger("voice.routes")
router = APIRouter(tags=["voice"])

Caller = Annotated[Identity, Depends(current_identity)]
RESEARCH_FAILED = "Web research failed ({reason}): this answer comes from the model alone."
NO_SOURCES = "The web search found no usable sources: this answer comes from the model alone."


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


# ---------------------------------------------------------------- helpers


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


async def speak_to_file(st: VoiceState, user_id: int, text: str, engine: str | None, voice: str | None) -> str:
    tts = st.engines.tts_engine(engine)
    speech = await st.engines.synthesize(tts, text, voice)
    return await asyncio.to_thread(st.store.save, user_id, wav_bytes(speech.pcm16, speech.sample_rate))


def as_http(exc: AudioError | EngineError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


_LANG = re.compile(r"^[a-z]{2,3}$")


def check_language(language: str | None) -> str | None:
    if language in (None, "", "auto"):
        return None
    lang = language.strip().lower()
    if not _LANG.match(lang):
        raise HTTPException(422, f"Invalid language code '{language}' (use e.g. en, de, fr)")
    return lang


# ---------------------------------------------------------------- STT / TTS


@router.post("/api/stt", responses=QUOTA_RESPONSES)
async def stt(
    st: State,
    identity: Caller,
    file: Annotated[UploadFile, File()],
    language: Annotated[str | None, Form()] = None,
    engine: Annotated[str | None, Form()] = None,
) -> dict[str, Any]:
    try:
        transcript = await transcribe_upload(st, identity.user_id, file, check_language(language), engine)
    except (AudioError, EngineError) as exc:
        raise as_http(exc) from exc
    return transcript.as_dict()


class TTSIn(BaseModel):
    text: str = Field(max_length=100_000)
    voice: str | None = Field(default=None, max_length=200)
    engine: str | None = Field(default=None, max_length=50)
    format: Literal["wav"] = "wav"


def _streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header for a stream of unknown length (sizes set to the maximum)."""
    import struct

    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


@router.post("/api/tts", responses=QUOTA_RESPONSES)
async def tts(
    body: TTSIn,
    st: State,
    identity: Caller,
    as_: Annotated[Literal["wav", "json"], Query(alias="as")] = "wav",
    stream: bool = False,
) -> Response:
    """WAV audio of `text`; `?as=json` saves it and answers `{audio_path}`; `?stream=true`
    sends the WAV sentence by sentence as it is synthesised."""
    text = check_text(body.text, st)
    try:
        engine = st.engines.tts_engine(body.engine)
        engine.check_voice(body.voice)
        # Every form of speech costs its characters, before any audio (a stream's 429 is JSON).
        await charge(st.quotas, identity.user_id, TTS_CHARS, len(text))
        if stream and as_ == "wav":
            return StreamingResponse(
                _stream_wav(st, engine, text, body.voice),
                media_type="audio/wav",
                headers={"X-Accel-Buffering": "no", "X-TTS-Engine": engine.name},
            )
        speech = await st.engines.synthesize(engine, text, body.voice)
    except EngineError as exc:
        raise as_http(exc) from exc
    wav = wav_bytes(speech.pcm16, speech.sample_rate)
    if as_ == "json":
        path = await asyncio.to_thread(st.store.save, identity.user_id, wav)
        return JSONResponse({"audio_path": path, "duration": round(speech.seconds, 3), "engine": engine.name})
    return Response(wav, media_type="audio/wav", headers={"X-TTS-Engine": engine.name})


async def _stream_wav(st: VoiceState, engine: Any, text: str, voice: str | None) -> AsyncIterator[bytes]:
    """Runs the engine's generator in a thread, passing pieces through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Speech | BaseException | None] = asyncio.Queue(maxsize=8)

    def produce() -> None:
        try:
            for piece in engine.stream(text, voice):
                asyncio.run_coroutine_threadsafe(queue.put(piece), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except BaseException as exc:  # handed to the consumer
            asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()

    async with st.engines.tts_semaphore:
        task = loop.run_in_executor(None, produce)
        first = True
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    log.warning("streamed synthesis failed", extra={"error": str(item)})
                    break
                if first:
                    yield _streaming_wav_header(item.sample_rate)
                    first = False
                yield item.pcm16
        finally:
            while not task.done():  # let the producer finish (it blocks on a full queue)
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)


@router.get("/api/audio/{name}")
async def audio_file(name: str, st: State, identity: Caller) -> Response:
    path = st.store.path_for(identity.user_id, name)
    if path is None:
        raise HTTPException(404, "Audio file not found")
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})


# ---------------------------------------------------------------- TTS jobs


class TTSJobIn(BaseModel):
    text: str = Field(max_length=100_000)
    voice_id: str | None = Field(default=None, max_length=200)
    tts_engine: str | None = Field(default=None, max_length=50)


def _queue(st: VoiceState) -> JobQueue:
    if st.queue is None:
        raise HTTPException(503, "The job queue is unavailable (DATABASE_URL is not set)")
    return st.queue


@router.post("/api/jobs/tts", responses=QUOTA_RESPONSES)
async def create_tts_job(body: TTSJobIn, st: State, identity: Caller) -> dict[str, Any]:
    text = check_text(body.text, st)
    try:
        engine = st.engines.tts_engine(body.tts_engine)  # 422/503 now rather than a failed job later
        engine.check_voice(body.voice_id)
    except EngineError as exc:
        raise as_http(exc) from exc
    _queue(st)  # no queue, no charge
    await charge(st.quotas, identity.user_id, TTS_CHARS, len(text))  # when queued: the worker speaks it
    job_id = await _queue(st).enqueue(
        identity.user_id, {"text": text, "voice_id": body.voice_id, "tts_engine": body.tts_engine}
    )
    return {"job_id": job_id, "status": "queued"}


@router.get("/api/jobs/{job_id}")
async def get_job(job_id: str, st: State, identity: Caller) -> dict[str, Any]:
    job = await _queue(st).get(identity.user_id, job_id)
    if job is None:
        raise HTTPException(404, "Job not found")
    return job


def job_handler(st: VoiceState) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    async def handle(job: dict[str, Any]) -> dict[str, Any]:
        p = job["payload"]
        path = await speak_to_file(st, job["user_id"], p["text"], p.get("tts_engine"), p.get("voice_id"))
        return {"audio_path": path, "engine": p.get("tts_engine") or st.settings.voice_tts_engine}

    return handle


def job_error_is_final(exc: BaseException) -> bool:
    """Bad input will not get better on a retry; a missing engine or a crash might."""
    return isinstance(exc, EngineError) and exc.status == 422


# ---------------------------------------------------------------- mic-chat


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"status": "error", "error": message, "detail": message, "message": message}
    return JSONResponse(body, status, headers=dict(headers or {}))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


async def _earlier_turns(st: VoiceState, token: str, session_id: str | None) -> list[dict[str, Any]]:
    """The session's earlier user/assistant turns; none when it can't be read (the answer still stands)."""
    if not session_id:
        return []
    try:
        return await st.core.recent(token, session_id, CONTEXT_MESSAGES)
    except CoreClientError as exc:
        log.warning("could not read chat history", extra={"error": str(exc)})
        return []


async def _web_sources(st: VoiceState, token: str, text: str, research: bool) -> tuple[Findings | None, str | None]:
    """(findings, notice): sources to answer from in research mode, or why there are none."""
    if not research:
        return None, None
    try:
        findings = await st.research.find(token, text)
    except ResearchUnavailable as exc:
        return None, RESEARCH_FAILED.format(reason=exc)
    if not findings.sources or not findings.context:
        return None, NO_SOURCES
    return findings, None


@router.post("/api/mic-chat", responses=QUOTA_RESPONSES)
async def mic_chat(
    request: Request,
    st: State,
    identity: Caller,
    file: Annotated[UploadFile, File()],
    model: Annotated[str | None, Form()] = None,
    session_id: Annotated[str | None, Form()] = None,
    research_mode: Annotated[str | None, Form()] = None,
    text_only: Annotated[str | None, Form()] = None,
    low_vram: Annotated[str | None, Form()] = None,
    tts_engine: Annotated[str | None, Form()] = None,
    language: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    """Transcribe → answer with the LLM (from web sources with `research_mode`, citing them
    as [n]) → speak the answer (unless `text_only`) → save both messages to the user's chat
    history (`input_type: "voice"`). Plain JSON."""
    token = request.headers.get(HEADER, "")
    session_id = (session_id or "").strip() or None
    try:
        lang = check_language(language)
        # A turn (the model's answer) and the recording's seconds, all or none.
        transcript = await transcribe_upload(st, identity.user_id, file, lang, None, also={MIC_CHAT_TURNS: 1})
    except HTTPException as exc:
        return _error(exc.status_code, str(exc.detail), exc.headers)  # a 429 keeps its Retry-After
    except (AudioError, EngineError) as exc:
        return _error(exc.status, exc.message)
    text = transcript.text.strip()
    if not text:
        return _error(422, "No speech was recognised in the recording")

    research = _truthy(research_mode)
    history, (findings, notice) = await asyncio.gather(
        _earlier_turns(st, token, session_id), _web_sources(st, token, text, research)
    )
    try:
        used_model = await st.conversation.pick_model(model)
        answer, reasoning, used_model = await st.conversation.answer(history, text, used_model, findings)
    except LLMError as exc:
        return _error(exc.status, exc.message)
    if not answer:
        answer = "(The model gave no answer.)"

    audio_path: str | None = None
    tts_error: str | None = None
    if not _truthy(text_only):
        spoken = speakable(answer) or answer
        try:
            st.engines.tts_engine(tts_engine)  # an unknown engine is refused before it costs anything
            await st.quotas.take(TTS_CHARS, identity.user_id, len(spoken))
            audio_path = await speak_to_file(st, identity.user_id, spoken, tts_engine, None)
        except QuotaExceeded as exc:
            tts_error = exc.message  # over the speech quota: the text answer still stands
        except EngineError as exc:
            if exc.status == 422 and tts_engine:
                return _error(422, exc.message)
            tts_error = exc.message  # the text answer still stands
            log.warning("mic-chat could not speak the answer", extra={"error": exc.message})

    saved: dict[str, Any] = {}
    history_error: str | None = None
    meta = {"transcription": text, "language": transcript.language, "duration": round(transcript.duration, 3)}
    try:
        saved = await st.core.save_exchange(
            token,
            session_id=session_id,
            user_message={"content": text, "input_type": "voice", "metadata": meta, "model_used": used_model},
            assistant_message={
                "content": answer,
                "reasoning": reasoning or None,
                "model_used": used_model,
                "input_type": "voice",
                "metadata": {
                    "audio_path": audio_path,
                    "research_mode": research,
                    "research": findings is not None,
                    "sources": findings.cited() if findings else [],
                },
            },
        )
    except CoreClientError as exc:
        history_error = str(exc)
        log.warning("could not save mic-chat to the chat history", extra={"error": str(exc)})

    new_history = [{"role": m["role"], "content": m.get("content") or ""} for m in history]
    new_history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]
    body: dict[str, Any] = {
        "status": "complete",
        "history": new_history,
        "session_id": saved.get("session_id") or session_id,
        "message_id": saved.get("message_id"),
        "final_answer": answer,
        "transcription": text,
        "model": used_model,
        "language": transcript.language,
    }
    if audio_path:
        body["audio_path"] = audio_path
    if reasoning:
        body["reasoning"] = reasoning
    if research:
        body["sources"] = findings.sources if findings else []
        body["sources_found"] = len(body["sources"])
    if notice:
        body["notice"] = notice
    if tts_error:
        body["tts_error"] = tts_error
    if history_error:
        body["history_error"] = history_error
    del low_vram  # accepted for the front end; models here are already small
    return JSONResponse(body)
