"""POST /api/research-chat: a research turn as a server-sent event stream (`chat.py` holds
the turn itself). The turn is charged before the stream starts, so over the quota is a
JSON 429, not an event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from harvis_common.diagnostics import SSE_HEADERS, sse_event
from harvis_common.internal_auth import HEADER
from harvis_common.quotas import QUOTA_RESPONSES

from ...chat import chat_turn
from ..deps import Caller, charge_turns, history_of, knowledge_search, researcher_of, settings_of
from ..schemas import ResearchChatRequest

log = logging.getLogger("research.routes")

router = APIRouter(tags=["research"])


@router.post("/api/research-chat", responses=QUOTA_RESPONSES)
async def research_chat(body: ResearchChatRequest, identity: Caller, request: Request) -> StreamingResponse:
    await charge_turns(request, identity)  # before the stream: over the quota is a JSON 429
    token = request.headers.get(HEADER, "")
    config = settings_of(request)
    turn = chat_turn(
        researcher_of(request),
        history_of(request),
        token,
        question=body.message,
        history=[h.model_dump() for h in body.history],
        requested_model=body.model,
        session_id=body.session_id,
        web_search=body.enableWebSearch,
        temperature=body.temperature,
        max_sources=config.research_max_sources,
        max_tokens=config.chat_max_tokens or None,
        knowledge=knowledge_search(request, identity) if body.use_knowledge_base else None,
    )

    async def events() -> AsyncIterator[bytes]:
        try:
            async for ev in turn:
                yield sse_event(ev)
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream is open: the failure must be an event, not a broken body
            log.exception("research chat failed")
            yield sse_event({"status": "error", "error": "Research failed on our side"})

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
