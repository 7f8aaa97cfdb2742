"""The SSRF guard as a forward proxy, for programs we can't hand `SafeHTTPClient` to.

Chromium (browser-service: `--proxy-server`, one listener per session) and n8n
(n8n-integration: `HTTP_PROXY`/`HTTPS_PROXY`, one listener for the instance) send
every request of a user's page or workflow here: plain `http://` as an absolute-form
request (`GET http://host/path HTTP/1.1`), everything else as a `CONNECT host:port`
tunnel. Each one is checked with `harvis_common.ssrf.check_url` — the policy research
uses — before a byte leaves the machine, and the connection then goes to the address
that was vetted, never a fresh lookup, so DNS rebinding between check and connect has
nothing to swap. A redirect is the client's next request, vetted the same way.

A refusal is `403 Forbidden` with `X-Harvis-Blocked: 1` (a small HTML page for plain
requests, an empty body for CONNECT), kept in `blocked`; a name that does not resolve or
an upstream that does not answer is `502 Bad Gateway`. Stdlib only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from .ssrf import SSRFBlocked, SSRFPolicy, check_url

log = logging.getLogger("harvis.ssrf_proxy")

HEAD_LIMIT = 64 * 1024
IDLE_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "upgrade"}
BLOCKED_HEADER = "X-Harvis-Blocked"


@dataclass(frozen=True)
class Blocked:
    at: float
    url: str
    reason: str


def _host_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):  # [v6]:port
        host, _, rest = authority[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    host, sep, port = authority.rpartition(":")
    if not sep:
        return authority, default_port
    return host, int(port)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GuardProxy:
    """One listener on `host:port` (loopback and an ephemeral port by default)."""

    def __init__(self, policy: SSRFPolicy, name: str = "", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.policy = policy
        self.name = name
        self.host = host
        self.port = port
        self.blocked: deque[Blocked] = deque(maxlen=50)
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=HEAD_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def blocked_since(self, t: float) -> list[Blocked]:
        return [b for b in self.blocked if b.at >= t]

    # ------------------------------------------------------------ connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug here must not kill the listener
            log.exception("proxy connection failed", extra={"proxy": self.name})
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self._refuse(writer, "Malformed request line.", status="400 Bad Request", blocked=False)
            return
        self.requests += 1
        if method.upper() == "CONNECT":
            await self._connect(target, reader, writer)
        else:
            await self._forward(method, target, version, lines[1:], reader, writer)

    def _block(self, url: str, reason: str) -> None:
        self.blocked.append(Blocked(time.monotonic(), url, reason))
        log.info("blocked outbound request", extra={"proxy": self.name, "url": url[:300], "reason": reason})

    async def _open(self, url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str] | str:
        """Vet the URL and connect to its vetted address; a str is the refusal reason."""
        try:
            target = await check_url(url, self.policy)
        except SSRFBlocked as exc:
            if str(exc).startswith("cannot resolve host"):  # not a refusal: the name does not exist
                return f"upstream unreachable ({exc})"
            return str(exc)
        last = "no address"
        for address in target.addresses:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(address, target.port), CONNECT_TIMEOUT_S)
                return r, w, address
            except (OSError, TimeoutError) as exc:
                last = f"cannot connect to {target.host}:{target.port}: {exc}"
        return f"upstream unreachable ({last})"

    async def _connect(self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = _host_port(authority, 443)
        except ValueError:
            await self._refuse(writer, "Malformed CONNECT target.", status="400 Bad Request", blocked=False)
            return
        url = f"https://{_authority(host, port)}/"
        opened = await self._open(url)
        if isinstance(opened, str):
            if "unreachable" in opened:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                self._block(url, opened)
                writer.write(
                    f"HTTP/1.1 403 Forbidden\r\n{BLOCKED_HEADER}: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .encode()
                )  # fmt: skip
            await writer.drain()
            return
        up_r, up_w, _ = opened
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await self._pipe_both(reader, writer, up_r, up_w)

    async def _forward(
        self,
        method: str,
        url: str,
        version: str,
        header_lines: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "http" or not parts.netloc:
            self._block(url, "only absolute http:// URLs go through this proxy")
            await self._refuse(writer, "This request is not allowed.")
            return
        opened = await self._open(url)
        if isinstance(opened, str):
            if "unreachable" in opened:
                await self._refuse(writer, opened, status="502 Bad Gateway", blocked=False)
            else:
                self._block(url, opened)
                await self._refuse(writer, f"Blocked by Harvis: {opened}")
            return
        up_r, up_w, _ = opened
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = [h for h in header_lines if h and h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
        headers.append("Connection: close")
        up_w.write((f"{method} {path} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode("latin-1"))
        await up_w.drain()
        await self._relay_response(reader, writer, up_r, up_w)

    async def _refuse(
        self, writer: asyncio.StreamWriter, message: str, status: str = "403 Forbidden", *, blocked: bool = True
    ) -> None:
        body = (
            "<!doctype html><html><head><title>Blocked</title></head><body><h1>Request blocked</h1><p>"
            + message.replace("&", "&amp;").replace("<", "&lt;")
            + "</p></body></html>"
        ).encode()
        mark = f"{BLOCKED_HEADER}: 1\r\n" if blocked else ""
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"{mark}Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def _relay_response(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        """Request body upstream (raw), response head rewritten to `Connection: close`, body raw."""
        upload = asyncio.ensure_future(self._pipe(reader, up_w))
        try:
            head = await asyncio.wait_for(up_r.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
            lines = head.decode("latin-1").split("\r\n")
            kept = [h for h in lines[1:] if h and h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
            writer.write(
                (lines[0] + "\r\n" + "".join(h + "\r\n" for h in kept) + "Connection: close\r\n\r\n").encode("latin-1")
            )
            await writer.drain()
            await self._pipe(up_r, writer)
        finally:
            upload.cancel()
            with contextlib.suppress(BaseException):
                await upload
            up_w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await asyncio.wait_for(src.read(65536), IDLE_TIMEOUT_S)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, TimeoutError):
            pass

    async def _pipe_both(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        a = asyncio.ensure_future(self._pipe(reader, up_w))
        b = asyncio.ensure_future(self._pipe(up_r, writer))
        try:
            await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (a, b):
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
            up_w.close()
