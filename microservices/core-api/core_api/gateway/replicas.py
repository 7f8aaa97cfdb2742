"""A service's replicas: balancing with failover, and sessions pinned to the replica that owns them.

A service URL setting may list several base URLs, one per replica, the position being the
replica's ordinal (core_api/settings.py); the gateway keeps one UpstreamPool per replica.

Balanced (a request that names no session): the replicas take turns. A replica that can't be
connected to (UpstreamUnavailable from `acquire`: nothing was sent, so any method may go
elsewhere) sits out BACKOFF_S and the request goes on to the next. When every replica sits out,
the one whose back-off ends first is tried anyway: each request makes at least one attempt, as
with one replica, so a service coming back is noticed at once. None connects: UpstreamUnavailable
(the gateway's 503).

Pinned: a service whose manifest has [sessions] (harvis_common.manifest) keeps each session in
one replica, which minted the session's id with its ordinal in it (harvis_common.replicas). A
request naming a session (path template, else query parameter, else a small JSON body's
top-level field) goes to that replica only: no other has the session, so there is no failover.
An id that is not a UUID is balanced (the service answers it as it always did: 404 or 422); an
ordinal past the list, or an owner that can't be connected to, is SessionGone (HTTP 410, or
WebSocket close 4410).

With one replica nothing is parsed and the pool is used directly (the gateway's fast path).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import parse_qsl

import orjson

from harvis_common.manifest import Sessions
from harvis_common.replicas import owner_ordinal

from .asgi import Message, Receive, Scope
from .telemetry import CONNECT_FAILURES
from .upstream import ClientGone, Connection, UpstreamPool, UpstreamUnavailable

log = logging.getLogger("harvis.gateway")

# How long a replica that refused a connection is left out of the turns.
BACKOFF_S = 2.0
# A JSON body up to this size is read to find the session it names; a larger one is not pinned
# (session requests are small; uploads must stream, not be held in memory).
MAX_PINNED_BODY = 64 * 1024
GONE = "This session was on a replica that is gone; start a new session"


class SessionGone(Exception):
    """The replica that owns the session does not exist or can't be reached."""


class Replicas:
    """One service's replicas, in ordinal order, each with its UpstreamPool."""

    def __init__(self, service: str, pools: Sequence[UpstreamPool], sessions: Sessions | None = None) -> None:
        if not pools:
            raise ValueError(f"{service}: no replica")
        self.service = service
        self.pools = list(pools)
        self.first = self.pools[0]
        self.single = len(self.pools) == 1
        # Pinning matters only with replicas to choose from: one replica parses nothing.
        self.sessions = None if self.single else sessions
        self._turn = 0
        self._down_until = [0.0] * len(self.pools)  # loop time each replica's back-off ends

    def __len__(self) -> int:
        return len(self.pools)

    # ---------------------------------------------------------------- choosing a replica

    def order(self) -> list[int]:
        """The replicas a balanced request tries, in order: from the one whose turn it is, those
        not sitting out a back-off (or, if all are, the one whose back-off ends first)."""
        n = len(self.pools)
        first = self._turn
        self._turn = (first + 1) % n
        now = self.first.loop.time()
        down = self._down_until
        up = [i % n for i in range(first, first + n) if down[i % n] <= now]
        return up or [min(range(n), key=down.__getitem__)]

    async def acquire(self) -> tuple[UpstreamPool, Connection]:
        """A connection for a request naming no session, on the first replica that connects."""
        if self.single:
            pool = self.first
            try:
                return pool, await pool.acquire()
            except UpstreamUnavailable as exc:
                self.failed(0, exc)
                raise
        error: UpstreamUnavailable | None = None
        for ordinal in self.order():
            pool = self.pools[ordinal]
            try:
                conn = await pool.acquire()
            except UpstreamUnavailable as exc:
                self.failed(ordinal, exc)
                error = exc
                continue
            self._down_until[ordinal] = 0.0
            return pool, conn
        assert error is not None
        raise error

    async def acquire_owner(self, ordinal: int) -> tuple[UpstreamPool, Connection]:
        """A connection to the replica that owns a session (tried even if it sits out a back-off:
        there is nowhere else to go); SessionGone when there is no such replica or it is down."""
        if ordinal >= len(self.pools):
            raise SessionGone(f"{self.service}: no replica {ordinal} (there are {len(self.pools)})")
        pool = self.pools[ordinal]
        try:
            conn = await pool.acquire()
        except UpstreamUnavailable as exc:
            self.failed(ordinal, exc)
            raise SessionGone(str(exc)) from exc
        self._down_until[ordinal] = 0.0
        return pool, conn

    def owner(self, session_id: str | None) -> int | None:
        """The ordinal of the replica owning `session_id`; None: not pinned (no id, or not a UUID)."""
        return None if session_id is None else owner_ordinal(session_id)

    def failed(self, ordinal: int, exc: Exception) -> None:
        """A connection to replica `ordinal` could not be made: counted, logged, and the replica
        sits out its back-off (with one replica there is no other turn to give it)."""
        CONNECT_FAILURES.labels(self.service).inc()
        log.warning("service unavailable", extra={"upstream": self.service, "replica": ordinal, "reason": str(exc)})
        if not self.single:
            self._down_until[ordinal] = self.first.loop.time() + BACKOFF_S

    async def fetch(
        self, method: str, path: str, read_timeout_s: float, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """UpstreamPool.fetch on a replica that connects (schemas: any replica will do)."""
        error: UpstreamUnavailable | None = None
        for ordinal in (0,) if self.single else self.order():
            try:
                return await self.pools[ordinal].fetch(method, path, read_timeout_s, headers)
            except UpstreamUnavailable as exc:
                if not self.single:
                    self._down_until[ordinal] = self.first.loop.time() + BACKOFF_S
                error = exc
        assert error is not None
        raise error

    async def close(self) -> None:
        for pool in self.pools:
            await pool.close()

    # ---------------------------------------------------------------- finding the session

    def session_in_url(self, path: str, query: bytes) -> str | None:
        """The session a path (its template's `{session_id}`) or query parameter names."""
        sessions = self.sessions
        if sessions is None:
            return None
        found = sessions.in_path(path)
        if found is not None or not query:
            return found
        for name in sessions.fields:
            if name.encode() + b"=" in query:
                for key, value in parse_qsl(query.decode("latin-1")):
                    if key == name and value:
                        return value
        return None

    async def session_of(self, scope: Scope, receive: Receive, body_length: int) -> tuple[str | None, bytes | None]:
        """(the session an HTTP request names or None, its body when it was read to find out).
        The body is read only for a JSON one of at most MAX_PINNED_BODY bytes (Content-Length),
        then forwarded as received; raises ClientGone if the client leaves meanwhile."""
        found = self.session_in_url(scope["path"], scope["query_string"])
        sessions = self.sessions
        if found is not None or sessions is None or not sessions.fields:
            return found, None
        if not 0 < body_length <= MAX_PINNED_BODY or not _is_json(scope):
            return None, None
        body = await _read_body(receive)
        if not any(b'"' + name.encode() + b'"' in body for name in sessions.fields):
            return None, body  # parse only a body that can name a session
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, body  # not pinned: the service answers it (422)
        if isinstance(data, dict):
            for name in sessions.fields:
                value = data.get(name)
                if isinstance(value, str) and value:
                    return value, body
        return None, body


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value[:16].lower() == b"application/json"
    return False


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone("client disconnected during upload")
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body already read handed out first (then the client's own, for its
    disconnect)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
