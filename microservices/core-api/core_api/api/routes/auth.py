"""`/api/auth/*`: signup, login, me, stats, logout (shapes fixed by the contract)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ...auth.context import COOKIE_NAME, AuthUser
from ...auth.service import (
    AccountDisabled,
    AuthService,
    DuplicateUser,
    HasherOverloaded,
    InvalidCredentials,
    RateLimited,
)
from ...store import users
from ..body_limit import BoundedBodyRoute
from ..deps import CREDENTIALS_ERROR, Caller, Service, admin_only, caller_ip, request_token
from ..schemas import LoginRequest, LogoutResponse, MeResponse, SignupRequest, TokenResponse

DUPLICATE_USER = "User with this email or username already exists"
BAD_CREDENTIALS = "Incorrect email or password"
TOO_MANY_ATTEMPTS = "Too many login attempts, try again later"
TOO_MANY_SIGNUPS = "Too many signups from your network, try again later"
ACCOUNT_DISABLED = "This account is disabled; ask an administrator"
BUSY = "The server is busy checking passwords, try again in a moment"
STATS_ADMIN_ONLY = "Fleet-wide auth statistics need an administrator account"

router = APIRouter(prefix="/api/auth", tags=["auth"], route_class=BoundedBodyRoute)

StatsAdmin = Annotated[AuthUser, Depends(admin_only(STATS_ADMIN_ONLY))]


def _busy(exc: HasherOverloaded) -> HTTPException:
    # 503 (not 429): the server, not this client, is over capacity.
    return HTTPException(503, BUSY, headers={"Retry-After": str(exc.retry_after_s)})


def _token_response(token: str, auth: AuthService) -> JSONResponse:
    """The login answer: the token in the body (Bearer clients) and in the cookie
    (the browser), the cookie living exactly as long as the token."""
    return _with_cookie(JSONResponse(TokenResponse(access_token=token).model_dump()), token, auth.token_ttl_s, auth)


def _with_cookie(response: JSONResponse, value: str, max_age: int, auth: AuthService) -> JSONResponse:
    """Set (or, with max_age 0, clear) the token cookie; never cached."""
    response.set_cookie(
        COOKIE_NAME,
        value,
        max_age=max_age,
        **({"expires": 0} if max_age == 0 else {}),
        path="/",
        httponly=True,
        samesite="lax",
        secure=bool(auth.settings.cookie_secure),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/signup", response_model=TokenResponse, responses={409: {}, 422: {}, 429: {}, 503: {}})
async def signup(body: SignupRequest, request: Request, auth: Service) -> JSONResponse:
    try:
        token, _ = await auth.signup(body.username, body.email, body.password, caller_ip(request, auth))
    except RateLimited as exc:
        raise HTTPException(429, TOO_MANY_SIGNUPS, headers={"Retry-After": str(exc.retry_after_s)}) from None
    except HasherOverloaded as exc:
        raise _busy(exc) from None
    except DuplicateUser:
        raise HTTPException(409, DUPLICATE_USER) from None
    return _token_response(token, auth)


@router.post("/login", response_model=TokenResponse, responses={401: {}, 403: {}, 429: {}, 503: {}})
async def login(body: LoginRequest, request: Request, auth: Service) -> JSONResponse:
    try:
        token, _ = await auth.login(body.email, body.password, caller_ip(request, auth))
    except RateLimited as exc:
        raise HTTPException(429, TOO_MANY_ATTEMPTS, headers={"Retry-After": str(exc.retry_after_s)}) from None
    except HasherOverloaded as exc:
        raise _busy(exc) from None
    except InvalidCredentials:
        raise HTTPException(401, BAD_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"}) from None
    except AccountDisabled:
        raise HTTPException(403, ACCOUNT_DISABLED) from None
    return _token_response(token, auth)


@router.get("/me", response_model=MeResponse, responses={401: {}})
async def me(caller: Caller, auth: Service) -> dict[str, object]:
    user = await users.find_by_id(auth.pool, caller.id)
    if user is None:  # deleted since the token was issued
        raise HTTPException(401, CREDENTIALS_ERROR, headers={"WWW-Authenticate": "Bearer"})
    return user.public()


@router.get("/stats", responses={401: {}, 403: {}})
async def stats(_: StatsAdmin, auth: Service) -> dict[str, object]:
    """Fleet-wide counters (every user's logins, the user count): administrators only."""
    return await auth.stats()


@router.post("/logout", response_model=LogoutResponse)
async def logout(request: Request, auth: Service) -> JSONResponse:
    """Always clears the cookie (idempotent); revokes the token if it was valid."""
    token = request_token(request)
    user = await auth.logout(token) if token else None
    return _with_cookie(JSONResponse(LogoutResponse(revoked=user is not None).model_dump()), "", 0, auth)
