"""Each user's current state (exists, active, admin), read from the `users` table and
trusted for `ttl_s` seconds.

A token says who its user was when it was issued; this says who they are now.
Without it a disabled or deleted user, or a demoted admin, kept every power their
token claimed until it expired (24 h by default; issue 14). With it a change made
anywhere (another replica, the admin CLI, plain SQL) counts within `ttl_s`, and
at once on the replica that made it (`forget`).

The hot path stays in memory: a fresh entry is answered without I/O, and the
many requests of one user that arrive while their entry is being refreshed
share one query. When the database cannot answer, the last known state is used
(a blip must not log everyone out: the front end drops its token on a 401), and
a user never seen before is `StateUnavailable` (the routes' 503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg

from ..store import users

log = logging.getLogger("harvis.auth")

QUERY_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class UserState:
    exists: bool
    is_active: bool
    is_admin: bool

    @property
    def may_act(self) -> bool:
        return self.exists and self.is_active


GONE = UserState(exists=False, is_active=False, is_admin=False)


class StateUnavailable(Exception):
    """The user's state is unknown here and the database did not answer."""


class UserStateCache:
    def __init__(self, pool: asyncpg.Pool, ttl_s: float, max_size: int = 50_000) -> None:
        self._pool = pool
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._entries: OrderedDict[int, tuple[UserState, float]] = OrderedDict()  # id -> (state, fresh until)
        self._loading: dict[int, asyncio.Future[UserState]] = {}
        self._epoch = 0  # bumped by forget(): a read that started before it is not stored
        # Counters for /api/auth/stats.
        self.hits = 0
        self.loads = 0
        self.stale_served = 0
        self.errors = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, user_id: int) -> UserState:
        entry = self._entries.get(user_id)
        if entry is not None and entry[1] > time.monotonic():
            self.hits += 1
            self._entries.move_to_end(user_id)
            return entry[0]
        loading = self._loading.get(user_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(user_id, self._epoch))
            self._loading[user_id] = loading
            loading.add_done_callback(lambda done: self._loaded(user_id, done))
        try:
            # Shielded: one caller giving up (a client gone) must not cancel the others' read.
            return await asyncio.shield(loading)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            if entry is not None:
                self.stale_served += 1
                return entry[0]
            raise StateUnavailable(str(exc)) from exc

    def _loaded(self, user_id: int, done: asyncio.Future[UserState]) -> None:
        if self._loading.get(user_id) is done:
            del self._loading[user_id]
        if not done.cancelled() and done.exception() is not None:
            self.errors += 1
            log.warning("user state unavailable", extra={"user_id": user_id, "error": str(done.exception())})

    async def _fetch(self, user_id: int) -> tuple[bool, bool] | None:
        return await users.state(self._pool, user_id, QUERY_TIMEOUT_S)

    async def _load(self, user_id: int, epoch: int) -> UserState:
        self.loads += 1
        row = await self._fetch(user_id)
        state = GONE if row is None else UserState(exists=True, is_active=row[0], is_admin=row[1])
        if epoch == self._epoch:
            self._entries[user_id] = (state, time.monotonic() + self.ttl_s)
            self._entries.move_to_end(user_id)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)
        return state

    def prime(self, user_id: int, is_active: bool, is_admin: bool) -> None:
        """A state just read from the database anyway (at login or signup)."""
        self._entries[user_id] = (UserState(True, is_active, is_admin), time.monotonic() + self.ttl_s)
        self._entries.move_to_end(user_id)

    def forget(self, user_id: int) -> None:
        """This process just changed the user: read them again on their next request."""
        self._epoch += 1
        self._entries.pop(user_id, None)
        self._loading.pop(user_id, None)

    def forget_all(self) -> None:
        self._epoch += 1
        self._entries.clear()
        self._loading.clear()
