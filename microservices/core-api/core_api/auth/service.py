"""AuthService: the auth layer as one object, built once per process by main.py.

The routes use its async flows (signup, login, logout); the gateway uses
`authenticate`, which is synchronous and answers from memory because it runs
on every proxied request.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from redis.asyncio import Redis

from ..settings import Settings
from . import users
from .client_ip import IPNetwork, parse_networks
from .context import AuthUser
from .passwords import PasswordHasher
from .rate_limit import LoginRateLimiter
from .revocation import RevocationStore
from .stats import AuthCounters
from .tokens import TokenCodec, TokenError, VerifiedTokenCache

log = logging.getLogger("harvis.auth")


class DuplicateUser(Exception):
    """The username or email is already taken."""


class InvalidCredentials(Exception):
    """Unknown email or wrong password (deliberately not told apart)."""


class RateLimited(Exception):
    def __init__(self, retry_after_s: int, scope: str) -> None:
        super().__init__(f"rate limited ({scope}), retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s
        self.scope = scope


class AuthService:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: Redis | None = None,
        *,
        key_prefix: str | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        prefix = key_prefix or settings.redis_key_prefix
        self.tokens = TokenCodec(settings.jwt_secret, settings.jwt_ttl_minutes)
        self.passwords = PasswordHasher(settings.bcrypt_rounds)
        self.limiter = LoginRateLimiter(
            per_ip=settings.login_rate_per_ip,
            per_account=settings.login_rate_per_account,
            window_s=settings.login_rate_window_s,
            redis=redis,
            key_prefix=prefix,
        )
        self.revocations = RevocationStore(
            pool, redis, channel=f"{prefix}revoked", sync_interval_s=settings.revocation_sync_s
        )
        self.trusted_proxies: tuple[IPNetwork, ...] = parse_networks(settings.trusted_proxy_cidrs)
        self.cache = VerifiedTokenCache()
        self.counters = AuthCounters()

    @property
    def token_ttl_s(self) -> int:
        return self.tokens.ttl_s

    async def start(self) -> None:
        await self.passwords.warm_up()
        await self.revocations.start()
        log.info(
            "auth ready",
            extra={
                "revoked_loaded": len(self.revocations),
                "rate_limit_backend": self.limiter.backend,
                "bcrypt_rounds": self.passwords.rounds,
            },
        )

    async def stop(self) -> None:
        await self.revocations.stop()
        self.passwords.close()

    # -- the hot path -------------------------------------------------------

    def authenticate(self, token: str) -> AuthUser | None:
        """The user a token proves, or None. Memory only: no I/O, no awaits."""
        c = self.counters
        c.token_validations += 1
        user = self.cache.get(token, time.time())
        if user is not None:
            c.token_cache_hits += 1
        else:
            c.token_cache_misses += 1
            try:
                user = self.tokens.decode(token)
            except TokenError:
                c.tokens_invalid += 1
                return None
            self.cache.put(token, user)
        if self.revocations.is_revoked(user.jti):
            c.tokens_revoked_rejected += 1
            return None
        return user

    # -- flows ----------------------------------------------------------------

    def _issue(self, user: users.User) -> tuple[str, AuthUser]:
        self.counters.tokens_issued += 1
        return self.tokens.issue(user_id=user.id, username=user.username, email=user.email, is_admin=user.is_admin)

    async def signup(self, username: str, email: str, password: str) -> tuple[str, AuthUser]:
        """Create the user and log them in. Inputs are already validated (schemas)."""
        # Cheap check first, so a taken name costs no bcrypt; the insert itself
        # is still conflict-safe against a simultaneous signup.
        if await users.exists(self.pool, username, email):
            self.counters.signup_conflicts += 1
            raise DuplicateUser
        password_hash = await self.passwords.hash(password)
        user = await users.create(self.pool, username=username, email=email, password_hash=password_hash)
        if user is None:
            self.counters.signup_conflicts += 1
            raise DuplicateUser
        self.counters.signups += 1
        log.info("signup", extra={"user_id": user.id, "username": user.username})
        return self._issue(user)

    async def login(self, email: str, password: str, ip: str) -> tuple[str, AuthUser]:
        verdict = await self.limiter.check(ip, email)
        if not verdict.allowed:
            self.counters.logins_rate_limited += 1
            log.warning(
                "login rate limited", extra={"ip": ip, "limit": verdict.scope, "retry_after_s": verdict.retry_after_s}
            )
            raise RateLimited(verdict.retry_after_s, verdict.scope)
        user = await users.find_by_email(self.pool, email)
        # Unknown emails are checked against a dummy hash: same work, same time.
        ok = await self.passwords.verify(password, user.password_hash if user else None)
        if user is None or not ok:
            await self.limiter.record_failure(ip, email)
            self.counters.logins_failed += 1
            reason = "wrong password" if user else "unknown email"
            log.warning("login failed", extra={"ip": ip, "user_id": user.id if user else None, "reason": reason})
            raise InvalidCredentials
        await self.limiter.reset_account(email)
        new_hash = await self.passwords.hash(password) if self.passwords.needs_rehash(user.password_hash) else None
        await users.record_login(self.pool, user.id, new_hash)
        self.counters.logins_ok += 1
        log.info("login", extra={"user_id": user.id, "ip": ip, "rehashed": new_hash is not None})
        return self._issue(user)

    async def logout(self, token: str) -> AuthUser | None:
        """Revoke the token; the user it belonged to, or None if it was not valid anyway."""
        user = self.authenticate(token)
        if user is None:
            return None
        await self.revocations.revoke(user.jti, user.id, user.exp)
        self.cache.discard(token)
        self.counters.logouts += 1
        log.info("logout", extra={"user_id": user.id, "jti": user.jti})
        return user

    async def stats(self) -> dict[str, object]:
        c = self.counters.as_dict()
        rev = self.revocations
        last_sync = rev.last_sync_monotonic
        return {
            "tokens": {
                "validations": c["token_validations"],
                "cache_hits": c["token_cache_hits"],
                "cache_misses": c["token_cache_misses"],
                "invalid": c["tokens_invalid"],
                "revoked_rejected": c["tokens_revoked_rejected"],
                "issued": c["tokens_issued"],
                "cache_size": len(self.cache),
                "ttl_s": self.token_ttl_s,
            },
            "logins": {"ok": c["logins_ok"], "failed": c["logins_failed"], "rate_limited": c["logins_rate_limited"]},
            "signups": {"ok": c["signups"], "conflicts": c["signup_conflicts"]},
            "revocations": {
                "logouts": c["logouts"],
                "revoked_here": rev.revoked_here,
                "loaded_at_start": rev.loaded_at_start,
                "learned_from_sync": rev.learned_from_sync,
                "learned_from_pubsub": rev.learned_from_pubsub,
                "in_memory": len(rev),
                "purged_rows": rev.purged_rows,
                "sync_errors": rev.sync_errors,
                "last_sync_age_s": round(time.monotonic() - last_sync, 3) if last_sync is not None else None,
                "pubsub": self.redis is not None,
            },
            "passwords": {
                "hashes": self.passwords.hashes,
                "verifications": self.passwords.verifications,
                "bcrypt_rounds": self.passwords.rounds,
            },
            "rate_limit": {
                "backend": self.limiter.backend,
                "per_ip": self.limiter.per_ip,
                "per_account": self.limiter.per_account,
                "window_s": self.limiter.window_s,
                "redis_errors": self.limiter.redis_errors,
            },
            "users": await users.counts(self.pool),
            "uptime_s": round(time.time() - self.counters.started_at, 1),
        }
