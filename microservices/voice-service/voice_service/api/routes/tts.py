"""POST /api/tts: speech as WAV, saved (`?as=json`) or streamed (`?stream=true`). Every form
costs the text's characters from the caller's quota, taken before any audio."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from harvis_common.quotas import QUOTA_RESPONSES, charge

from ...audio import wav_bytes
from ...engines import EngineError
from ...speech import stream_wav
from ..deps import TTS_CHARS, Caller, State, as_http, check_text
from ..schemas import TTSIn

router = APIRouter(tags=["voice"])


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
                stream_wav(st.engines, engine, text, body.voice),
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
