"""core-api's gateway without a database, for bench/gateway.py.

    uvicorn gateway_app:app --app-dir bench      # with core-api's settings in the environment
    python bench/gateway_app.py mint             # fresh keys and tokens for a run, as JSON

The proxy path is production's: the real `Gateway`, and the real
`AuthService.authenticate` (token cache + revocation set, both in memory; the
database is only needed for signup/login and revocation sync, which the
benchmark does not use), or — if AuthService cannot be built — the same
TokenCodec and VerifiedTokenCache it uses.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI

from core_api.api.routes.health import health_overview_router
from core_api.audit import AuditLog
from core_api.auth.context import AuthUser
from core_api.auth.tokens import TokenCodec, TokenError, VerifiedTokenCache
from core_api.gateway import Gateway
from core_api.settings import Settings
from harvis_common.config import get_settings
from harvis_common.internal_auth import InternalSigner, generate_keypair
from harvis_common.logging import configure_logging
from harvis_common.tracing import configure_tracing

BENCH_USER = {"user_id": 1, "username": "bench", "email": "bench@example.com", "is_admin": False}


class CachedTokenAuthenticator:
    """Fallback: AuthService's hot path without its revocation store."""

    def __init__(self, settings: Settings) -> None:
        self.codec = TokenCodec(settings.jwt_secret, settings.jwt_ttl_minutes)
        self.cache = VerifiedTokenCache()

    async def authenticate(self, token: str) -> AuthUser | None:
        user = self.cache.get(token, time.time())
        if user is None:
            try:
                user = self.codec.decode(token)
            except TokenError:
                return None
            self.cache.put(token, user)
        return user


def build_authenticator(settings: Settings) -> Any:
    try:
        from core_api.auth.service import AuthService

        # No database: the user's current state (re-read from it every USER_STATE_CACHE_S in
        # production, one query per user then) is primed once and kept for the run, so what is
        # measured is production's per-request path, the cache hit.
        auth = AuthService(settings.model_copy(update={"user_state_cache_s": 300}), None)  # type: ignore[arg-type]
        auth.user_states.prime(BENCH_USER["user_id"], True, False)
        return auth
    except Exception as exc:  # its constructor changed: say so, and measure the same checks
        print(f"gateway_app: AuthService unavailable ({exc!r}); using TokenCodec + cache", file=sys.stderr)
        return CachedTokenAuthenticator(settings)


def mint() -> dict[str, str]:
    """Keys and tokens for one run: the user's JWT, and the long-lived internal
    header nginx adds on the direct path (what the gateway would sign)."""
    private, public = generate_keypair()
    jwt_secret = secrets.token_urlsafe(48)
    user_token, _ = TokenCodec(jwt_secret, 60).issue(
        user_id=1, username="bench", email="bench@example.com", is_admin=False
    )
    direct = InternalSigner(private, ttl_s=6 * 3600).sign("mcp-service", **BENCH_USER)  # type: ignore[arg-type]
    return {
        "INTERNAL_AUTH_PRIVATE_KEY": private,
        "INTERNAL_AUTH_PUBLIC_KEY": public,
        "JWT_SECRET": jwt_secret,
        "user_token": user_token,
        "direct_internal_auth": direct,
    }


if __name__ == "__main__" and sys.argv[1:] == ["mint"]:
    sys.stdout.write(orjson.dumps(mint()).decode() + "\n")
    sys.exit(0)


class DiscardPool:
    """The audit trail's writer without a database: the request path's part of it (one buffered
    event per proxied request) is measured, the COPY is not."""

    def acquire(self) -> DiscardPool:
        return self

    async def __aenter__(self) -> DiscardPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def copy_records_to_table(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def execute(self, *args: Any) -> str:
        return "DELETE 0"


settings = get_settings(Settings)
configure_logging(settings.service_name, settings.log_level)
configure_tracing(settings.service_name)  # spans exported when OTEL_EXPORTER_OTLP_ENDPOINT is set, as in production


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    gateway.attach(
        build_authenticator(settings),
        InternalSigner(settings.internal_auth_private_key, settings.internal_auth_ttl_s),
    )
    gateway.audit = AuditLog(DiscardPool(), 90)  # type: ignore[arg-type]
    await gateway.audit.start()
    await gateway.start()
    try:
        yield
    finally:
        await gateway.stop()
        await gateway.audit.stop()


api = FastAPI(title="core-api gateway (bench)", lifespan=lifespan)
gateway = Gateway(api, settings)
api.include_router(health_overview_router(gateway))
app = gateway
