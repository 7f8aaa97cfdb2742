"""GET /api/audio/{name}: a generated audio file (from /api/tts?as=json, a TTS job or
mic-chat), to its owner only: another user's name is not found (404)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from ..deps import Caller, State

router = APIRouter(tags=["voice"])


@router.get("/api/audio/{name}")
async def audio_file(name: str, st: State, identity: Caller) -> Response:
    path = st.store.path_for(identity.user_id, name)
    if path is None:
        raise HTTPException(404, "Audio file not found")
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "private, max-age=3600"})
