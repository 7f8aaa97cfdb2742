"""AuthService: the auth layer as one object, built once per process in app.py's lifespan.

The routes use its flows (signup, login, logout); the gateway and the routes' caller
check use `authenticate`, which answers from memory while the user's state is fresh
because it runs on every proxied request.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import asyncpg
from redis.asyncio import Redis

from ..settings import Settings
from ..store import users
from .client_ip import IPNetwork, parse_networks
from .context import AuthUser
from .passwords import HasherOverloaded, PasswordHasher
from .rate_limit import Counters, LoginRateLimiter, SignupRateLimiter
from .revocation import RevocationStore
from .stats import AuthCounters
from .tokens import TokenCodec, TokenError, VerifiedTokenCache
from .user_state import StateUnavailable, UserStateCache

__all__ = [
    "AccountDisabled",
    "AuthService",
    "DuplicateUser",
    "HasherOverloaded",
    "InvalidCredentials",
    "RateLimited",
    "StateUnavailable",
]

log = logging.getLogger("harvis.auth")


class DuplicateUser(Exception):
    """The username or email is already taken."""


class InvalidCredentials(Exception):
    """Unknown email or wrong password (deliberately not told apart)."""


class AccountDisabled(Exception):
    """The password was right, but an administrator disabled the account."""


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
        self.passwords = PasswordHasher(settings.bcrypt_rounds, max_queue=settings.bcrypt_queue_max)
        counters = Counters(redis)  # one Redis-or-memory store for both limiters
        self.limiter = LoginRateLimiter(
            per_ip=settings.login_rate_per_ip,
            per_account=settings.login_rate_per_account,
            window_s=settings.login_rate_window_s,
            key_prefix=prefix,
            counters=counters,
        )
        self.signup_limiter = SignupRateLimiter(
            per_ip=settings.signup_rate_per_ip,
            window_s=settings.signup_rate_window_s,
            key_prefix=prefix,
            counters=counters,
        )
        self.user_states = UserStateCache(pool, settings.user_state_cache_s)
        self.admin_emails = settings.admin_email_set
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
                "workers": self.passwords.workers,
                "running": self.passwords.running,
                "waiting": self.passwords.waiting,
                "queue_max": self.passwords.max_queue,
                "shed": self.passwords.rejected,
            },
        )

    async def stop(self) -> None:
        await self.revocations.stop()
        self.passwords.close()

    # -- the hot path -------------------------------------------------------

    def verify_token(self, token: str) -> AuthUser | None:
        """The user a token names, or None when it is forged, expired or revoked. Memory
        only, and blind to the user's current state: for access decisions use `authenticate`."""
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

    async def authenticate(self, token: str) -> AuthUser | None:
        """The user a valid token proves, as they are now: None when the token is invalid or
        the user was disabled or deleted since; `is_admin` is the current one, not the token's.
        From memory while the user's state is fresh (USER_STATE_CACHE_S), else one query.
        Raises StateUnavailable when the state is unknown and the database is away."""
        user = self.verify_token(token)
        if user is None:
            return None
        state = await self.user_states.get(user.id)
        if not state.may_act:
            self.counters.tokens_user_inactive += 1
            return None
        if state.is_admin != user.is_admin:
            user = dataclasses.replace(user, is_admin=state.is_admin)
        return user

    # -- flows ----------------------------------------------------------------

    def _issue(self, user: users.User) -> tuple[str, AuthUser]:
        self.counters.tokens_issued += 1
        self.user_states.prime(user.id, user.is_active, user.is_admin)
        return self.tokens.issue(user_id=user.id, username=user.username, email=user.email, is_admin=user.is_admin)

    @staticmethod
    def _refuse(retry_after_s: int, scope: str, ip: str, flow: str) -> RateLimited:
        log.warning("rate limited", extra={"flow": flow, "ip": ip, "limit": scope, "retry_after_s": retry_after_s})
        return RateLimited(retry_after_s, scope)

    async def signup(self, username: str, email: str, password: str, ip: str) -> tuple[str, AuthUser]:
        """Create the user and log them in. Inputs are already validated (schemas)."""
        verdict = await self.signup_limiter.attempt(ip)
        if not verdict.allowed:
            self.counters.signups_rate_limited += 1
            raise self._refuse(verdict.retry_after_s, "signup", ip, "signup")
        # Cheap check first, so a taken name costs no bcrypt; the insert itself
        # is still conflict-safe against a simultaneous signup.
        if await users.exists(self.pool, username, email):
            self.counters.signup_conflicts += 1
            raise DuplicateUser
        try:
            password_hash = await self.passwords.hash(password)
        except HasherOverloaded:
            await self.signup_limiter.not_evaluated(ip)
            self.counters.shed_for_load += 1
            raise
        is_admin = email.lower() in self.admin_emails
        user = await users.create(
            self.pool, username=username, email=email, password_hash=password_hash, is_admin=is_admin
        )
        if user is None:
            self.counters.signup_conflicts += 1
            raise DuplicateUser
        self.counters.signups += 1
        log.info("signup", extra={"user_id": user.id, "username": user.username, "ip": ip, "is_admin": is_admin})
        return self._issue(user)

    async def login(self, email: str, password: str, ip: str) -> tuple[str, AuthUser]:
        # Counted before the password is looked at, atomically: parallel guesses can't all pass.
        verdict = await self.limiter.attempt(ip, email)
        if not verdict.allowed:
            self.counters.logins_rate_limited += 1
            raise self._refuse(verdict.retry_after_s, verdict.scope, ip, "login")
        user = await users.find_by_email(self.pool, email)
        # Unknown emails are checked against a dummy hash: same work, same time.
        try:
            ok = await self.passwords.verify(password, user.password_hash if user else None)
        except HasherOverloaded:
            await self.limiter.not_evaluated(ip, email)  # never checked: not a guess
            self.counters.shed_for_load += 1
            raise
        if user is None or not ok:
            self.counters.logins_failed += 1
            reason = "wrong password" if user else "unknown email"
            log.warning("login failed", extra={"ip": ip, "user_id": user.id if user else None, "reason": reason})
            raise InvalidCredentials
        await self.limiter.succeeded(ip, email)
        if not user.is_active:
            self.counters.logins_disabled += 1
            log.warning("login refused: account disabled", extra={"ip": ip, "user_id": user.id})
            raise AccountDisabled
        new_hash = None
        if self.passwords.needs_rehash(user.password_hash):
            try:
                new_hash = await self.passwords.hash(password)
            except HasherOverloaded:  # the login itself succeeded: upgrade the hash next time
                new_hash = None
        make_admin = user.email in self.admin_emails and not user.is_admin
        await users.record_login(self.pool, user.id, new_hash, make_admin=make_admin)
        if make_admin:
            user = dataclasses.replace(user, is_admin=True)
            log.info("admin granted by ADMIN_EMAILS", extra={"user_id": user.id})
        self.counters.logins_ok += 1
        log.info("login", extra={"user_id": user.id, "ip": ip, "rehashed": new_hash is not None})
        return self._issue(user)

    async def logout(self, token: str) -> AuthUser | None:
        """Revoke the token; the user it belonged to, or None if it was not valid anyway
        (a disabled user's token can still be revoked)."""
        user = self.verify_token(token)
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
            "logins": {
                "ok": c["logins_ok"],
                "failed": c["logins_failed"],
                "rate_limited": c["logins_rate_limited"],
                "disabled": c["logins_disabled"],
            },
            "signups": {
                "ok": c["signups"],
                "conflicts": c["signup_conflicts"],
                "rate_limited": c["signups_rate_limited"],
            },
            "user_state": {
                "cache_s": self.user_states.ttl_s,
                "cached": len(self.user_states),
                "hits": self.user_states.hits,
                "loads": self.user_states.loads,
                "stale_served": self.user_states.stale_served,
                "errors": self.user_states.errors,
                "tokens_refused": c["tokens_user_inactive"],
            },
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
                "workers": self.passwords.workers,
                "running": self.passwords.running,
                "waiting": self.passwords.waiting,
                "queue_max": self.passwords.max_queue,
                "shed": self.passwords.rejected,
            },
            "rate_limit": {
                "backend": self.limiter.backend,
                "per_ip": self.limiter.per_ip,
                "per_account": self.limiter.per_account,
                "window_s": self.limiter.window_s,
                "signup_per_ip": self.signup_limiter.per_ip,
                "signup_window_s": self.signup_limiter.window_s,
                "redis_errors": self.limiter.redis_errors,
            },
            "users": await users.counts(self.pool),
            "uptime_s": round(time.time() - self.counters.started_at, 1),
        }
