"""Users' provider API keys at rest: AES-256-GCM.

The key comes from `API_KEY_ENCRYPTION_KEY` (base64url of 32 random bytes,
never the JWT secret). Each value is stored as nonce (12 bytes) ‖ ciphertext+tag,
with the user id and provider name as associated data, so a ciphertext copied
to another row does not decrypt. The key itself is never returned
(`/api/user/api-keys`, api/routes/api_keys.py).
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


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
