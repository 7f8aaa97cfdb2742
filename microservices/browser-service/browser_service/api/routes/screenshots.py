"""GET /api/browser/screenshot: a PNG of a session's viewport, full page or one element."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from ... import pages
from ..deps import Caller, Manager

router = APIRouter()


@router.get("/api/browser/screenshot")
async def screenshot(
    identity: Caller,
    mgr: Manager,
    session_id: Annotated[str, Query(max_length=64)],
    full_page: bool = False,
    selector: Annotated[str | None, Query(max_length=2000)] = None,
    by: Annotated[Literal["css", "xpath"] | None, Query()] = None,
) -> Response:
    session = mgr.get(session_id, identity.user_id)
    png = await pages.screenshot(mgr, session, full_page, selector, by)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
