"""POST /api/mic-chat: a spoken turn of a chat — transcribe, answer (`chat.py`), speak the
answer, save both messages to the user's history. Plain JSON, errors included
(`{"status": "error", "error", "detail", "message"}`). The recording's seconds and a voice
chat turn are taken together before Whisper runs; the spoken answer's characters before
it is synthesised (over that quota, the text answer stands without audio)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse

from harvis_common.internal_auth import HEADER
from harvis_common.llm import LLMError
from harvis_common.quotas import QUOTA_RESPONSES

from ...audio import AudioError
from ...chat import reply, save_turn
from ...engines import EngineError
from ..deps import (
    MIC_CHAT_TURNS,
    Caller,
    State,
    check_language,
    mic_chat_error,
    speak_answer,
    transcribe_upload,
    truthy,
)

router = APIRouter(tags=["voice"])


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
        return mic_chat_error(exc.status_code, str(exc.detail), exc.headers)  # a 429 keeps its Retry-After
    except (AudioError, EngineError) as exc:
        return mic_chat_error(exc.status, exc.message)
    text = transcript.text.strip()
    if not text:
        return mic_chat_error(422, "No speech was recognised in the recording")

    research = truthy(research_mode)
    try:
        turn = await reply(
            st.conversation,
            st.core,
            st.research,
            token,
            text,
            model=model,
            session_id=session_id,
            research_mode=research,
        )
    except LLMError as exc:
        return mic_chat_error(exc.status, exc.message)

    audio_path: str | None = None
    tts_error: str | None = None
    if not truthy(text_only):
        try:
            audio_path, tts_error = await speak_answer(st, identity.user_id, turn.answer, tts_engine)
        except EngineError as exc:  # the engine the request named is unknown or refuses the text
            return mic_chat_error(422, exc.message)

    saved, history_error = await save_turn(
        st.core, token, session_id, transcript, text, turn, research_mode=research, audio_path=audio_path
    )

    new_history = [{"role": m["role"], "content": m.get("content") or ""} for m in turn.history]
    new_history += [{"role": "user", "content": text}, {"role": "assistant", "content": turn.answer}]
    body: dict[str, Any] = {
        "status": "complete",
        "history": new_history,
        "session_id": saved.get("session_id") or session_id,
        "message_id": saved.get("message_id"),
        "final_answer": turn.answer,
        "transcription": text,
        "model": turn.model,
        "language": transcript.language,
    }
    if audio_path:
        body["audio_path"] = audio_path
    if turn.reasoning:
        body["reasoning"] = turn.reasoning
    if research:
        body["sources"] = turn.findings.sources if turn.findings else []
        body["sources_found"] = len(body["sources"])
    if turn.notice:
        body["notice"] = turn.notice
    if tts_error:
        body["tts_error"] = tts_error
    if history_error:
        body["history_error"] = history_error
    del low_vram  # accepted for the front end; models here are already small
    return JSONResponse(body)
