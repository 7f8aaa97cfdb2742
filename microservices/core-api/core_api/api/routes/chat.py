"""POST /api/chat and /api/vision-chat: a chat turn streamed as SSE per the contract (the
events and their order: chat/turn.py).

Each turn counts against the user's `CHAT_TURNS_PER_HOUR` (`chat/quotas.py`) once the
request is valid and before the stream starts: over it, a JSON 429 + `Retry-After`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from harvis_common.quotas import QUOTA_RESPONSES

from ...auth.context import AuthUser
from ...chat.sse import SSEResponse
from ...chat.turn import chat_events
from ..deps import Caller, artifacts, charge_chat_turn, chat_settings, chat_state, knowledge_search
from ..schemas import ChatRequest, VisionChatRequest

router = APIRouter(tags=["chat"])


@router.post("/api/chat", responses=QUOTA_RESPONSES)
async def chat(body: ChatRequest, user: Caller, request: Request) -> SSEResponse:
    # The turn is counted before the stream starts, so over the quota is a JSON 429, not an SSE error.
    await charge_chat_turn(request, user)
    return _turn(request, user, body, images=None, vision=False)


@router.post("/api/vision-chat", responses=QUOTA_RESPONSES)
async def vision_chat(body: VisionChatRequest, user: Caller, request: Request) -> SSEResponse:
    await charge_chat_turn(request, user)  # one quota with /api/chat
    return _turn(request, user, body, images=body.images, vision=True)


def _turn(
    request: Request, user: AuthUser, body: ChatRequest, *, images: list[str] | None, vision: bool
) -> SSEResponse:
    store, backends, tasks = chat_state(request)
    settings = chat_settings(request)
    return SSEResponse(
        chat_events(
            store,
            backends,
            tasks,
            settings,
            user,
            body,
            images=images,
            preferred=settings.vision_model if vision else settings.default_model,
            artifacts=artifacts(request) if settings.chat_artifacts else None,
            knowledge=knowledge_search(request, user, body.use_knowledge_base),
        )
    )
