"""JWT handling: forged, expired and malformed tokens are refused; the cache is honest."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import httpx
import jwt
import orjson
import pytest
from conftest import JWT_SECRET, bearer, signup

from core_api.auth.service import AuthService
from core_api.auth.tokens import TokenCodec, TokenError, VerifiedTokenCache

pytestmark = pytest.mark.asyncio


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "1",
        "username": "ada",
        "email": "ada@example.com",
        "adm": False,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def forge(payload: dict[str, Any], key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def alg_none(payload: dict[str, Any]) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return f"{header}.{b64(data)}.{signature}"


async def test_a_well_formed_token_is_accepted() -> None:
    codec = TokenCodec(JWT_SECRET, 60)
    token, issued = codec.issue(user_id=7, username="ada", email="ada@example.com", is_admin=True)
    decoded = codec.decode(token)
    assert decoded == issued
    assert decoded.id == 7 and decoded.is_admin is True
    raw = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert raw["typ"] == "access" and raw["sub"] == "7" and len(raw["jti"]) == 32
    assert raw["exp"] - raw["iat"] == 3600
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


ATTACKS = {
    "alg none": lambda: alg_none(claims()),
    "alg none, no dot": lambda: alg_none(claims())[:-1],
    "wrong key": lambda: forge(claims(), key="another-secret-" + "y" * 40),
    "other HMAC alg with our key": lambda: forge(claims(), alg="HS512"),
    "expired": lambda: forge(claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    "issued in the future": lambda: forge(claims(iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
    "string iat": lambda: forge(claims(iat="yesterday")),
    "missing jti": lambda: forge(claims(jti=None)),
    "missing exp": lambda: forge(claims(exp=None)),
    "missing iat": lambda: forge(claims(iat=None)),
    "missing sub": lambda: forge(claims(sub=None)),
    "missing typ": lambda: forge(claims(typ=None)),
    "typ internal": lambda: forge(claims(typ="internal")),
    "typ refresh": lambda: forge(claims(typ="refresh")),
    "non-numeric sub": lambda: forge(claims(sub="admin")),
    "integer sub": lambda: forge(claims(sub=1)),
    "adm as string": lambda: forge(claims(adm="yes")),
    "empty jti": lambda: forge(claims(jti="")),
    "garbage": lambda: "a.b.c",
    "empty": lambda: "",
    "huge": lambda: "x" * 10_000,
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_codec_refuses(attack: str) -> None:
    with pytest.raises(TokenError):
        TokenCodec(JWT_SECRET, 60).decode(ATTACKS[attack]())


async def test_attacks_get_401_at_me(client: httpx.AsyncClient, service: AuthService) -> None:
    _, token = await signup(client)
    assert (await client.get("/api/auth/me", headers=bearer(token))).status_code == 200
    me_id = service.verify_token(token).id  # type: ignore[union-attr]
    attacks = [build() for build in ATTACKS.values()]
    # A payload tampered to become someone else (or an admin) with the real signature.
    attacks += [tampered(token, sub=str(me_id + 1)), tampered(token, adm=True), tampered(token, exp=2**31)]
    # A real user's claims signed with `none`.
    attacks.append(alg_none(jwt.decode(token, JWT_SECRET, algorithms=["HS256"])))
    for bad in attacks:
        if not bad:
            continue
        response = await client.get("/api/auth/me", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.json()["detail"] == "Could not validate credentials"
        assert response.headers["www-authenticate"] == "Bearer"
        cookie = await client.get("/api/auth/me", headers={"Cookie": f"access_token={bad}"})
        assert cookie.status_code == 401
    assert service.counters.tokens_invalid >= len(attacks)


async def test_small_clock_skew_between_replicas_is_tolerated() -> None:
    now = int(time.time())
    ahead = forge(claims(iat=now + 5, exp=now + 600))  # minted by a replica whose clock is 5 s ahead
    assert TokenCodec(JWT_SECRET, 60).decode(ahead).id == 1


async def test_cache_serves_repeat_validations(service: AuthService) -> None:
    token, _ = service.tokens.issue(user_id=1, username="ada", email="ada@example.com", is_admin=False)
    c = service.counters
    hits, misses = c.token_cache_hits, c.token_cache_misses
    first = service.verify_token(token)
    second = service.verify_token(token)
    assert first is not None and first == second
    assert (c.token_cache_misses, c.token_cache_hits) == (misses + 1, hits + 1)


async def test_cache_honours_expiry() -> None:
    codec = TokenCodec(JWT_SECRET, 60)
    now = int(time.time())
    token = forge(claims(iat=now, exp=now + 1))
    cache = VerifiedTokenCache()
    user = codec.decode(token)
    cache.put(token, user)
    assert cache.get(token, time.time()) == user
    assert cache.get(token, now + 1) is None  # at exp it is gone, not served stale
    assert len(cache) == 0


async def test_authenticate_stops_at_expiry(service: AuthService) -> None:
    now = int(time.time())
    token = forge(claims(iat=now, exp=now + 2))
    assert service.verify_token(token) is not None  # now cached
    await asyncio.sleep(now + 2.1 - time.time())
    assert service.verify_token(token) is None


async def test_cache_is_bounded() -> None:
    codec = TokenCodec(JWT_SECRET, 60)
    cache = VerifiedTokenCache(max_size=3)
    tokens = [codec.issue(user_id=i, username="u", email="u@example.com", is_admin=False) for i in range(5)]
    for token, user in tokens:
        cache.put(token, user)
    assert len(cache) == 3
    assert cache.get(tokens[0][0], time.time()) is None
    assert cache.get(tokens[4][0], time.time()) is not None


async def test_codec_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError):
        TokenCodec("", 60)
