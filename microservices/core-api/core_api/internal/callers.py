"""Who is calling core-api's internal API (`/internal/…`): a service, for a user.

Where it is reachable: `/internal/` is outside `/api/`, so nginx never forwards it
(it sends only `/api/*` and `/health` to core-api) and the gateway does not proxy
it. Only containers on the compose network (or loopback, natively) reach it.

How a caller proves itself: services hold only the internal-auth *public* key, so
they cannot mint tokens. A service sends back the `X-Internal-Auth` token the
gateway gave it for the user's request. core-api verifies it with its own key
pair: EdDSA signature, issuer, `typ`, and an audience that is one of the fleet's
services; the audience names the calling service, the subject the user.

A mic-chat or research answer can take longer than the token's 60 s lifetime, so
here a token is accepted up to `INTERNAL_HISTORY_TOKEN_MAX_AGE_S` (default 900 s)
after it was issued, instead of until its `exp`. Anything else — no header, a
bad signature, a token for core-api itself, one older than that — is a 401.
The routes get the caller from `api.deps.internal_caller`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from fastapi import HTTPException

from harvis_common.internal_auth import ALGORITHM, ISSUER, TOKEN_TYPE, Identity, load_private_key

from ..gateway.routes import SERVICES

AUDIENCES = tuple(sorted(SERVICES))  # the services the gateway signs tokens for
UNAUTHORIZED = "Missing or invalid internal authentication"


@dataclass(frozen=True, slots=True)
class InternalCaller:
    service: str  # the forwarded token's audience: the service that sent it back
    identity: Identity  # the user it acts for


class InternalTokenChecker:
    def __init__(self, private_key: str, max_age_s: int, leeway_s: int = 5) -> None:
        self._public = load_private_key(private_key).public_key()
        self.max_age_s = max_age_s
        self.leeway_s = leeway_s

    def verify(self, token: str | None) -> InternalCaller:
        """The caller of a valid token, else HTTPException 401."""
        if not token:
            raise HTTPException(401, UNAUTHORIZED)
        try:
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=list(AUDIENCES),
                issuer=ISSUER,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "typ"], "verify_exp": False},
            )
            iat = int(claims["iat"])
            user_id = int(claims["sub"])
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise HTTPException(401, UNAUTHORIZED) from exc
        now = time.time()
        if claims.get("typ") != TOKEN_TYPE or iat > now + self.leeway_s or now - iat > self.max_age_s:
            raise HTTPException(401, UNAUTHORIZED)
        identity = Identity(
            user_id=user_id,
            email=str(claims.get("email", "")),
            username=str(claims.get("username", "")),
            is_admin=bool(claims.get("adm", False)),
            request_id=claims.get("rid"),
        )
        return InternalCaller(str(claims["aud"]), identity)
