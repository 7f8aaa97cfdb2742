"""`/api/user/api-keys`: users' provider API keys, AES-256-GCM encrypted at rest.

The key comes from `API_KEY_ENCRYPTION_KEY` (base64url of 32 random bytes,
never the JWT secret). Each value is stored as nonce (12 bytes) ‖ ciphertext+tag,
with the user id and provider name as associated data, so a ciphertext copied
to another row does not decrypt. The key itself is never returned.

Keys are used for the user's chats (`provider_keys.py`), so only keys this server's chat
can use are stored (others are a 422 saying why), and an `api_url` must pass the SSRF
policy. Each listed row says whether it is in use (`in_use`, `in_use_reason`).
"""

from __future__ import annotations

import base64
import os
import re
from typing import Annotated, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, field_validator

from harvis_common.ssrf import SSRFBlocked

from ..auth.context import AuthUser
from ..auth.dependencies import current_user
from ..pg_input import PgText
from .provider_keys import key_status, unusable_reason, url_policy, vet_url

router = APIRouter(prefix="/api/user/api-keys", tags=["api-keys"])
User = Annotated[AuthUser, Depends(current_user)]

PROVIDER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
COLUMNS = "id, provider_name, api_url, is_active, created_at, updated_at"


class KeyCipher:
    def __init__(self, key_b64: str) -> None:
        try:
            raw = base64.urlsafe_b64decode(key_b64.strip() + "=" * (-len(key_b64.strip()) % 4))
        except (ValueError, TypeError) as exc:
            raise ValueError("API_KEY_ENCRYPTION_KEY must be base64url of 32 random bytes") from exc
        if len(raw) != 32:
            raise ValueError("API_KEY_ENCRYPTION_KEY must be base64url of 32 random bytes")
        self._aead = AESGCM(raw)

    @staticmethod
    def _aad(user_id: int, provider: str) -> bytes:
        return f"harvis-api-key:{user_id}:{provider}".encode()

    def encrypt(self, user_id: int, provider: str, secret: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, secret.encode(), self._aad(user_id, provider))

    def decrypt(self, user_id: int, provider: str, blob: bytes) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], self._aad(user_id, provider)).decode()


def generate_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


class ApiKeyCreate(BaseModel):
    provider_name: str = Field(min_length=1, max_length=64)
    api_key: PgText = Field(min_length=1, max_length=4096)
    api_url: PgText | None = Field(default=None, max_length=2048)
    is_active: bool = True

    @field_validator("provider_name")
    @classmethod
    def _provider(cls, value: str) -> str:
        value = value.strip().lower()
        if not PROVIDER_RE.match(value):
            raise ValueError("provider_name may contain letters, digits, '_', '.', '-' (1-64)")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("api_url must be an http(s) URL")
        return value


def _row(r: Any, settings: Any) -> dict[str, Any]:
    # `in_use`/`in_use_reason` are ours (the front end reads only the fields above them): a row
    # stored before the operator changed the chat backend, or switched off, says it isn't used.
    in_use, reason = key_status(settings, r["provider_name"], r["is_active"])
    return {
        "id": r["id"],
        "provider_name": r["provider_name"],
        "api_url": r["api_url"],
        "is_active": r["is_active"],
        "created_at": r["created_at"].isoformat(),
        "updated_at": r["updated_at"].isoformat(),
        "in_use": in_use,
        "in_use_reason": reason,
    }


def _cipher(request: Request) -> KeyCipher:
    cipher = request.app.state.key_cipher
    if cipher is None:
        raise HTTPException(503, "API key storage is not configured (API_KEY_ENCRYPTION_KEY is not set)")
    return cipher


@router.get("")
async def list_keys(user: User, request: Request) -> list[dict[str, Any]]:
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM user_api_keys WHERE user_id = $1 ORDER BY provider_name",  # noqa: S608
            user.id,
        )
    return [_row(r, request.app.state.chat_settings) for r in rows]


@router.post("", responses={422: {}})
async def save_key(body: ApiKeyCreate, user: User, request: Request) -> dict[str, Any]:
    cipher = _cipher(request)
    settings = request.app.state.chat_settings
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
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO user_api_keys (user_id, provider_name, api_key_encrypted, api_url, is_active)"  # noqa: S608 - constant column lists, values bound
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, provider_name) DO UPDATE SET"
            " api_key_encrypted = EXCLUDED.api_key_encrypted, api_url = EXCLUDED.api_url,"
            f" is_active = EXCLUDED.is_active, updated_at = now() RETURNING {COLUMNS}",
            user.id,
            body.provider_name,
            blob,
            body.api_url,
            body.is_active,
        )
    return _row(row, settings)


@router.delete("/{provider_name}")
async def delete_key(provider_name: str, user: User, request: Request) -> dict[str, Any]:
    async with request.app.state.pool.acquire() as conn:
        status = await conn.execute(
            "DELETE FROM user_api_keys WHERE user_id = $1 AND provider_name = $2", user.id, provider_name.lower()
        )
    if not status.endswith(" 1"):
        raise HTTPException(404, "No API key stored for this provider")
    return {"success": True, "provider_name": provider_name.lower()}
