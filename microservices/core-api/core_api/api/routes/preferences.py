"""`/api/user/preferences`: the caller's own preferences (`store/preferences.py`).

- `use_knowledge_base` (default false): chat grounds its answers in the user's knowledge base
  (`chat/knowledge.py`) when a request's own `use_knowledge_base` does not say.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...store import preferences
from ..deps import Caller
from ..schemas import PreferencesUpdate

router = APIRouter(prefix="/api/user/preferences", tags=["preferences"])


@router.get("")
async def get_preferences(user: Caller, request: Request) -> dict[str, Any]:
    return await preferences.get(request.app.state.pool, user.id)


@router.put("")
async def update_preferences(body: PreferencesUpdate, user: Caller, request: Request) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    return await preferences.update(request.app.state.pool, user.id, changes)
