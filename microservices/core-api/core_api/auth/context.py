"""What the rest of core-api (routes, the gateway) needs to know about a caller.

The gateway authenticates every proxied request, so this is the hot path:
`Authenticator.authenticate` answers from memory (cached signature checks, an
in-memory revocation set kept in sync in the background, each user's current
state cached for a few seconds) and reads the database only when a user's state
is due again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

COOKIE_NAME = "access_token"
# A user's state could not be read (user_state.StateUnavailable): a 503, not a 401 — the token
# may be fine, and the front end drops its token on a 401. Routes and the gateway say the same.
AUTH_UNAVAILABLE = "Sign-in is temporarily unavailable, try again in a moment"
STATE_RETRY_AFTER_S = "2"


@dataclass(frozen=True, slots=True)
class AuthUser:
    id: int
    email: str
    username: str
    is_admin: bool
    jti: str
    exp: int  # unix seconds


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> AuthUser | None:
        """The user a token proves, as they are now (current admin flag), or None if the
        token is invalid, expired or revoked, or the user was disabled or deleted since.
        May raise `user_state.StateUnavailable` (answer 503, not 401)."""


def token_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The caller's token: `Authorization: Bearer …` first, else the `access_token` cookie."""
    cookie_header: bytes | None = None
    for key, value in headers:
        if key == b"authorization":
            scheme, _, cred = value.partition(b" ")
            if scheme.lower() == b"bearer" and cred.strip():
                return cred.strip().decode("latin-1")
        elif key == b"cookie":
            cookie_header = value if cookie_header is None else cookie_header + b"; " + value
    if cookie_header:
        for part in cookie_header.split(b";"):
            name, sep, val = part.strip().partition(b"=")
            if sep and name == COOKIE_NAME.encode() and val:
                return val.strip(b'"').decode("latin-1")
    return None
