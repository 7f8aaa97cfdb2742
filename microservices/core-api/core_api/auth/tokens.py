"""User access tokens: HS256 JWTs, algorithm pinned, every claim we rely on required."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict

import jwt

from .context import AuthUser

ALGORITHM = "HS256"
TOKEN_TYPE = "access"  # noqa: S105 (the `typ` claim, not a secret)
REQUIRED_CLAIMS = ["exp", "iat", "jti", "sub", "typ"]
MAX_TOKEN_LENGTH = 4096  # ours are ~400 bytes; anything huge is not worth parsing
CLOCK_SKEW_S = 30  # tolerated for `iat` only: replicas' clocks may drift a little


class TokenError(Exception):
    """The token is malformed, forged, expired or not an access token."""


class TokenCodec:
    def __init__(self, secret: str, ttl_minutes: int) -> None:
        if not secret:
            raise ValueError("JWT_SECRET is not set")
        self._secret = secret
        self.ttl_s = ttl_minutes * 60

    def issue(self, *, user_id: int, username: str, email: str, is_admin: bool) -> tuple[str, AuthUser]:
        now = int(time.time())
        jti = uuid.uuid4().hex
        claims = {
            "sub": str(user_id),
            "username": username,
            "email": email,
            "adm": is_admin,
            "iat": now,
            "exp": now + self.ttl_s,
            "jti": jti,
            "typ": TOKEN_TYPE,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        user = AuthUser(id=user_id, email=email, username=username, is_admin=is_admin, jti=jti, exp=now + self.ttl_s)
        return token, user

    def decode(self, token: str) -> AuthUser:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("bad token length")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinned: `none`, HS512, RS256… in the header are refused
                # iat is checked below with a small skew allowance; PyJWT's own check
                # allows none, and would refuse a token from a replica a second ahead.
                options={"require": REQUIRED_CLAIMS, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        if claims["typ"] != TOKEN_TYPE:
            raise TokenError("wrong token type")
        iat = claims["iat"]
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise TokenError("malformed iat")
        if iat > time.time() + CLOCK_SKEW_S:
            raise TokenError("issued in the future")
        jti, username, email, adm = claims["jti"], claims.get("username"), claims.get("email"), claims.get("adm", False)
        if not (isinstance(jti, str) and jti and isinstance(username, str) and isinstance(email, str)):
            raise TokenError("malformed claims")
        if not isinstance(adm, bool):
            raise TokenError("malformed claims")
        sub = claims["sub"]
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit()):
            raise TokenError("bad subject")
        return AuthUser(id=int(sub), email=email, username=username, is_admin=adm, jti=jti, exp=int(claims["exp"]))


class VerifiedTokenCache:
    """Tokens whose signature and claims were already checked, until they expire.

    Only valid tokens go in (so garbage cannot fill it); the least recently
    used entry goes when it is full. Revocation is checked on every use by the
    caller, not here, so a cached token stops working the moment it is revoked.
    """

    def __init__(self, max_size: int = 50_000) -> None:
        self.max_size = max_size
        self._entries: OrderedDict[str, AuthUser] = OrderedDict()

    def get(self, token: str, now: float) -> AuthUser | None:
        user = self._entries.get(token)
        if user is None:
            return None
        if user.exp <= now:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return user

    def put(self, token: str, user: AuthUser) -> None:
        self._entries[token] = user
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)
