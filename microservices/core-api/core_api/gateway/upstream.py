"""A lean HTTP/1.1 client for the gateway's hop to the services.

Why not aiohttp or httpx: on this hop their per-request machinery (request and
response objects, header multidicts, stream readers, timeout contexts) cost
more CPU than the service behind them. This is just an asyncio Protocol around
httptools' response parser, one keep-alive pool per service, and a body that
is handed over chunk by chunk as it arrives (with flow control both ways), so
SSE events and downloads stream and uploads are never held in memory.

A connection serves one exchange at a time; the gateway drives it:
`acquire` → `begin` → `write`/`drain` the request → `wait_headers` →
`take_body`/`wait_body` until `complete` → `pool.release`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

Receive = Callable[[], Awaitable[dict]]

# Pause reading from the service when this much body waits for a slow client.
HIGH_WATER = 256 * 1024
# uvicorn closes idle keep-alive connections after 5 s: never reuse one that old,
# so a request does not race the service's close.
IDLE_TTL_S = 4.0
# A response not finished this soon gets a client-disconnect watcher (cheap
# small responses never pay for one).
STALL_DELAY_S = 0.05


class UpstreamError(Exception):
    """The exchange with the service failed."""


class UpstreamUnavailable(UpstreamError):
    """Could not connect (refused, unreachable, connect timeout)."""


class UpstreamTimeout(UpstreamError):
    """The service sent nothing for longer than the read timeout."""


class UpstreamBroken(UpstreamError):
    """The service closed the connection or sent something unparsable."""


class ClientGone(UpstreamError):
    """The client disconnected; the exchange was aborted."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    host: str
    port: int
    netloc: bytes  # the Host header we send
    base_path: bytes  # prefix for every request target ("" for a bare origin)
    ssl: bool

    @classmethod
    def from_url(cls, name: str, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: service URL must be http(s)://host[:port], got {url!r}")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        return cls(
            name=name,
            host=parts.hostname,
            port=port,
            netloc=parts.netloc.rpartition("@")[2].encode("idna"),
            base_path=parts.path.rstrip("/").encode(),
            ssl=secure,
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.netloc.decode()}{self.base_path.decode()}"


class Connection(asyncio.Protocol):
    """One keep-alive connection to a service and the response being read on it."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # has served an exchange before this one
        self.idle_since = 0.0
        # Per-exchange state, reset by begin().
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.received_any = False
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.error: UpstreamError | None = None
        self._informational = False
        self._head_request = False
        self._framed = False  # response has Content-Length or chunked framing
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._last_activity = 0.0
        self._receive: Receive | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.exchange = 0

    # ---------------------------------------------------------------- exchange API

    def begin(self, timeout: float, *, head: bool = False, receive: Receive | None = None) -> None:
        """Start an exchange. `timeout`: the longest the service may stay silent.
        `receive`: the client's ASGI receive, once the request body is read; if
        the response is not complete soon, it is watched for a disconnect that
        then aborts the exchange (small quick responses never pay for that)."""
        self.status = 0
        self.headers = []
        self.headers_done = self.complete = self.received_any = False
        self.keep_alive = True
        self.error = None
        self.exchange += 1
        self._head_request = head
        self._framed = False
        self._timeout = timeout
        self._receive = receive
        self._last_activity = now = self.loop.time()
        self._timer = self.loop.call_at(now + (timeout if receive is None else STALL_DELAY_S), self._on_timer)

    def watch_client(self, receive: Receive) -> None:
        """`begin(receive=...)` for requests with a body, once it is sent."""
        self._receive = receive
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(self.loop.time() + STALL_DELAY_S, self._on_timer)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            # Upload progress counts as activity: the timeout is for a silent
            # service, not for a long upload.
            self._last_activity = self.loop.time()

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
        self._last_activity = self.loop.time()

    async def wait_headers(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    async def wait_body(self) -> None:
        """Until body data is buffered, the response is complete, or it failed."""
        while not self.chunks and not self.complete:
            if self.error is not None:
                raise self.error
            await self._wait()

    def take_body(self) -> bytes:
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def finish(self) -> None:
        """The exchange is over (either way): stop its timer and client watch."""
        self._receive = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def abort(self, error: UpstreamError | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self._wake()

    # ---------------------------------------------------------------- internals

    async def _wait(self) -> None:
        waiter = self._waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        if self.complete or self.closed:
            return
        if self._receive is not None:
            self._watcher = self.loop.create_task(self._watch_client(self._receive, self.exchange))
            self._receive = None
        now = self.loop.time()
        deadline = self._last_activity + self._timeout
        if self._reading_paused:  # a slow client is not a slow service
            self._timer = self.loop.call_at(max(deadline, now + 1.0), self._on_timer)
            return
        if now < deadline:
            self._timer = self.loop.call_at(deadline, self._on_timer)
            return
        self.keep_alive = False
        self.abort(UpstreamTimeout(f"{self.pool.endpoint.name} sent nothing for {self._timeout:g} s"))

    async def _watch_client(self, receive: Receive, exchange: int) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.exchange == exchange and not self.complete:
            self._watcher = None
            self.keep_alive = False
            self.abort(ClientGone("client disconnected"))

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._last_activity = self.loop.time()
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.keep_alive = False
            self.abort(UpstreamBroken(f"bad response from {self.pool.endpoint.name}: {exc}"))
            return
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and not self._framed and self.error is None:
            self.complete = True  # body delimited by connection close (HTTP/1.0 style)
        elif not self.complete and self.error is None:
            self.error = UpstreamBroken(f"{self.pool.endpoint.name} closed the connection")
        self.keep_alive = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self.pool._lost(self)
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    # ---------------------------------------------------------------- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 1xx interim response: wait for the real one
            self._informational = True
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        for name, value in self.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                self._framed = True
                break
        if self._head_request:
            # httptools cannot be told the request was HEAD, so it would wait for a
            # Content-Length body that never comes: end here and drop the connection.
            self.complete = True
            self.keep_alive = False
            self.finish()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if not self._head_request:
            self.complete = True
            self.finish()
            # A service may answer before reading the whole upload (a 413, say):
            # wake an upload blocked on a full socket, it will stop there.
            if self._drain_waiter is not None and not self._drain_waiter.done():
                self._drain_waiter.set_result(None)


class UpstreamPool:
    """Keep-alive connections to one service, at most `max_connections` open."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connect_timeout: float,
        max_connections: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.loop = loop or asyncio.get_running_loop()
        self._idle: list[Connection] = []  # LIFO: the warmest connection first
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._ssl = ssl.create_default_context() if endpoint.ssl else None
        self._closing = False

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def acquire(self) -> Connection:
        while True:
            if self._idle:
                now = self.loop.time()
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and now - conn.idle_since < IDLE_TTL_S:
                        return conn
                    conn.abort()
            if self._open < self.max_connections:
                return await self._connect()
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were handed a slot: pass it on
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise

    async def _connect(self) -> Connection:
        if self._closing:
            raise UpstreamUnavailable(f"{self.endpoint.name}: gateway is stopping")
        self._open += 1
        ep = self.endpoint
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: Connection(self),
                    ep.host,
                    ep.port,
                    ssl=self._ssl,
                    server_hostname=ep.host if self._ssl else None,
                ),
                self.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._open -= 1
            self._wake_one()
            reason = "connect timeout" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise UpstreamUnavailable(f"{ep.name} at {ep.host}:{ep.port}: {reason}") from exc
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the pool if it can serve another exchange, else closed."""
        conn.finish()
        if conn.closed:
            return
        if not (conn.complete and conn.keep_alive) or conn.chunks or self._closing:
            conn.abort()
            return
        conn.reused = True
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        self._wake_one()

    def _lost(self, conn: Connection) -> None:
        self._open -= 1
        with contextlib.suppress(ValueError):  # not idle: it was serving an exchange
            self._idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closing = True
        for conn in list(self._idle):
            conn.abort()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

    async def fetch(
        self, method: str, path: str, read_timeout_s: float, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """A small buffered request (health checks, schemas): status and body."""
        conn = await self.acquire()
        try:
            conn.begin(read_timeout_s, head=method == "HEAD")
            ep = self.endpoint
            extra = b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in (headers or {}).items())
            conn.write(
                b"%s %s%s HTTP/1.1\r\nhost: %s\r\naccept: application/json\r\n%s\r\n"
                % (method.encode(), ep.base_path, path.encode(), ep.netloc, extra)
            )
            await conn.wait_headers()
            body = []
            while True:
                await conn.wait_body()
                if conn.chunks:
                    body.append(conn.take_body())
                if conn.complete:
                    return conn.status, b"".join(body)
        except BaseException:
            conn.keep_alive = False
            raise
        finally:
            self.release(conn)
