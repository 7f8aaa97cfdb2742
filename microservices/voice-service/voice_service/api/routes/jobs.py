"""POST /api/jobs/tts queues speech for the job queue's workers (the text's characters are
taken from the caller's quota when it is queued); GET /api/jobs/{job_id} is its state, to
its owner only. Without DATABASE_URL there is no queue: 503."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from harvis_common.quotas import QUOTA_RESPONSES, charge

from ...engines import EngineError
from ..deps import TTS_CHARS, Caller, State, as_http, check_text, job_queue
from ..schemas import TTSJobIn

router = APIRouter(tags=["voice"])


@router.post("/api/jobs/tts", responses=QUOTA_RESPONSES)
async def create_tts_job(body: TTSJobIn, st: State, identity: Caller) -> dict[str, Any]:
    text = check_text(body.text, st)
    try:
        engine = st.engines.tts_engine(body.tts_engine)  # 422/503 now rather than a failed job later
        engine.check_voice(body.voice_id)
    except EngineError as exc:
        raise as_http(exc) from exc
    queue = job_queue(st)  # no queue, no charge
    await charge(st.quotas, identity.user_id, TTS_CHARS, len(text))  # when queued: the worker speaks it
    job_id = await queue.enqueue(
        identity.user_id, {"text": text, "voice_id": body.voice_id, "tts_engine": body.tts_engine}
    )
    return {"job_id": job_id, "status": "queued"}


@router.get("/api/jobs/{job_id}")
async def get_job(job_id: str, st: State, identity: Caller) -> dict[str, Any]:
    job = await job_queue(st).get(identity.user_id, job_id)
    if job is None:
        raise HTTPException(404, "Job not found")
    return job
