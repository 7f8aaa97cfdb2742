"""POST /api/stt: a recording's transcript. Its decoded length is taken from the caller's
seconds of audio once it is known to be usable and before Whisper runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from harvis_common.quotas import QUOTA_RESPONSES

from ...audio import AudioError
from ...engines import EngineError
from ..deps import Caller, State, as_http, check_language, transcribe_upload

router = APIRouter(tags=["voice"])


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
