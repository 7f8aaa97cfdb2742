"""`/api/user/api-keys`: users' provider API keys, encrypted at rest (`chat/key_cipher.py`);
the key itself is never returned.

Keys are used for the user's chats (`chat/provider_keys.py`), so only keys this server's chat
can use are stored (others are a 422 saying why), and an `api_url` must pass the SSRF
policy. Each listed row says whether it is in use (`in_use`, `in_use_reason`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from harvis_common.ssrf import SSRFBlocked

from ...chat.provider_keys import unusable_reason, url_policy, vet_url, with_status
from ...store import api_keys
from ..deps import Caller, chat_settings, key_cipher
from ..schemas import ApiKeyCreate

router = APIRouter(prefix="/api/user/api-keys", tags=["api-keys"])


@router.get("")
async def list_keys(user: Caller, request: Request) -> list[dict[str, Any]]:
    rows = await api_keys.list_keys(request.app.state.pool, user.id)
    return [with_status(chat_settings(request), r) for r in rows]


@router.post("", responses={422: {}})
async def save_key(body: ApiKeyCreate, user: Caller, request: Request) -> dict[str, Any]:
    cipher = key_cipher(request)
    settings = chat_settings(request)
    # A key this server's chat would never use is refused, not stored: the front end shows this
    # message, while it would ignore an `in_use: false` (a stored secret that does nothing is a trap).
    reason = unusable_reason(settings, body.provider_name)
    if reason is not None:
        raise HTTPException(422, reason)
    if body.api_url is not None:
        # Chats will call this URL for the user: the SSRF policy now, and again on every use.
        try:
            await vet_url(body.api_url, url_policy(request.app.state))
        except (SSRFBlocked, ValueError, OSError) as exc:  # refused, or a name the resolver can't take
            raise HTTPException(422, f"api_url is not allowed: {exc}") from exc
    blob = cipher.encrypt(user.id, body.provider_name, body.api_key)
    row = await api_keys.save(request.app.state.pool, user.id, body.provider_name, blob, body.api_url, body.is_active)
    return with_status(settings, row)


@router.delete("/{provider_name}")
async def delete_key(provider_name: str, user: Caller, request: Request) -> dict[str, Any]:
    if not await api_keys.delete(request.app.state.pool, user.id, provider_name.lower()):
        raise HTTPException(404, "No API key stored for this provider")
    return {"success": True, "provider_name": provider_name.lower()}
