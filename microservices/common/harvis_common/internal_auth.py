"""The signed `X-Internal-Auth` header core-api adds to every proxied request.

It is a JWT signed with Ed25519 (EdDSA): core-api holds the private key, the
services only the public key, so a compromised service can verify identities
but never mint one. Tokens are short-lived, name the target service as their
audience (a token for voice is useless at mcp) and carry the request id.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER = "X-Internal-Auth"
HEADER_LOWER = b"x-internal-auth"
ISSUER = "harvis-core-api"
ALGORITHM = "EdDSA"
TOKEN_TYPE = "internal"  # noqa: S105 - a claim value, not a secret
DEFAULT_TTL_S = 60


class InternalAuthError(Exception):
    """The header is missing, malformed, expired, or not for this service."""


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: int
    email: str
    username: str
    is_admin: bool
    request_id: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "email": self.email,
            "username": self.username,
            "is_admin": self.is_admin,
            "request_id": self.request_id,
        }


def _b64d(value: str) -> bytes:
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def generate_keypair() -> tuple[str, str]:
    """A fresh (private, public) pair, each base64url of the 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization as s

    priv = Ed25519PrivateKey.generate()
    raw_priv = priv.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption())
    raw_pub = priv.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return _b64e(raw_priv), _b64e(raw_pub)


def load_private_key(value: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(_b64d(value))
    except Exception as exc:  # wrong length or not base64
        raise ValueError("INTERNAL_AUTH_PRIVATE_KEY must be base64url of 32 raw Ed25519 bytes") from exc


def load_public_key(value: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(_b64d(value))
    except Exception as exc:
        raise ValueError("INTERNAL_AUTH_PUBLIC_KEY must be base64url of 32 raw Ed25519 bytes") from exc


class InternalSigner:
    """Mints internal tokens (core-api only)."""

    def __init__(self, private_key: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._key = load_private_key(private_key)
        self.ttl_s = ttl_s

    def sign(
        self,
        audience: str,
        *,
        user_id: int,
        email: str,
        username: str,
        is_admin: bool = False,
        request_id: str | None = None,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "typ": TOKEN_TYPE,
            "sub": str(user_id),
            "email": email,
            "username": username,
            "adm": is_admin,
            "rid": request_id,
            "iat": now,
            "exp": now + self.ttl_s,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)


class InternalVerifier:
    """Checks internal tokens (every service)."""

    def __init__(self, public_key: str, audience: str, leeway_s: int = 5) -> None:
        if not public_key:
            raise ValueError("INTERNAL_AUTH_PUBLIC_KEY is not set")
        self._key = load_public_key(public_key)
        self.audience = audience
        self.leeway_s = leeway_s

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise InternalAuthError("missing internal auth header")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],  # pinned: never trust the token's own `alg`
                audience=self.audience,
                issuer=ISSUER,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "typ"]},
            )
        except jwt.PyJWTError as exc:
            raise InternalAuthError(f"invalid internal auth header: {exc}") from exc
        if claims.get("typ") != TOKEN_TYPE:
            raise InternalAuthError("invalid internal auth header: wrong token type")
        # Reject tokens minted for a far future (a stolen signer with a bad clock).
        if claims["iat"] > time.time() + self.leeway_s:
            raise InternalAuthError("invalid internal auth header: issued in the future")
        try:
            user_id = int(claims["sub"])
        except (TypeError, ValueError) as exc:
            raise InternalAuthError("invalid internal auth header: bad subject") from exc
        return Identity(
            user_id=user_id,
            email=str(claims.get("email", "")),
            username=str(claims.get("username", "")),
            is_admin=bool(claims.get("adm", False)),
            request_id=claims.get("rid"),
        )
