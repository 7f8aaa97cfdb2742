"""POST /api/screen-analyze: OCR (and optionally a vision model's description) of an
uploaded image or of a session's screenshot."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, HTTPException

from ... import ocr, pages
from ...describe import describe
from ..deps import Caller, Manager
from ..schemas import AnalyzeIn

router = APIRouter()

_ocr_slots = asyncio.Semaphore(2)


@router.post("/api/screen-analyze")
async def screen_analyze(body: AnalyzeIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = mgr.settings
    if bool(body.image) == bool(body.session_id):
        raise HTTPException(422, "send either `image` (base64) or `session_id`")
    if body.image:
        try:
            data = ocr.decode_base64_image(body.image, settings.screen_analyze_max_bytes)
        except ocr.ImageError as exc:
            raise HTTPException(exc.status, exc.message) from exc
        source = "image"
    else:
        session = mgr.get(body.session_id or "", identity.user_id)
        data = await pages.screenshot(mgr, session, body.full_page, None, None)
        source = "session"
    t0 = time.monotonic()
    want_description = bool(settings.screen_describe_model) and body.describe is not False
    if body.describe and not settings.screen_describe_model:
        raise HTTPException(400, "No vision model is configured on this server (SCREEN_DESCRIBE_MODEL)")
    describing = asyncio.ensure_future(describe(settings, data)) if want_description else None
    try:
        async with _ocr_slots:
            result = await asyncio.to_thread(ocr.analyze, data, body.language or settings.ocr_language, 60)
    except ocr.ImageError as exc:
        if describing is not None:
            describing.cancel()
        raise HTTPException(exc.status, exc.message) from exc
    description, description_error = (await describing) if describing is not None else (None, None)
    out = {**result, "description": description, "source": source}
    if description_error:
        out["description_error"] = description_error
    out["duration_ms"] = round((time.monotonic() - t0) * 1000)
    return out
