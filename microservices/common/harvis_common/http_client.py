"""Outbound HTTP to user-supplied URLs, through the SSRF guard (aiohttp).

Every hop is vetted by `harvis_common.ssrf.check_url` (scheme, port, host,
IP literals), and the connection itself goes through a resolver that returns
only vetted addresses: the name is resolved once per connection and what is
connected to is exactly what was checked, so DNS rebinding between check and
connect has nothing to swap. aiohttp still sends the real host name as Host
and as TLS SNI, so certificates verify normally. Redirects are followed by
hand (each hop re-checked, at most `max_redirects`); the whole exchange has a
time limit and the body a size limit. No proxies from the environment, no
cookies kept between calls.

    async with SafeHTTPClient(SSRFPolicy.from_setting(settings.ssrf_allowlist)) as http:
        res = await http.request("GET", url, max_bytes=1_000_000)

Needs `aiohttp` in the service's requirements.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .metrics import FETCHES
from .ssrf import SSRFBlocked, SSRFPolicy, _allowed, check_url, is_public_ip, resolve
from .tracing import HEADER as TRACEPARENT
from .tracing import start_span

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_USER_AGENT = "Harvis/0.1 (+self-hosted assistant)"
# Headers that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class FetchError(Exception):
    """The request could not be completed (timeout, refused, too large...)."""


@dataclass
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool  # the body was longer than max_bytes (and cut there)
    redirects: list[str] = field(default_factory=list)  # every URL before the final one
    elapsed_ms: float = 0.0

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding, errors="replace")


class VettedResolver(AbstractResolver):
    """Resolves a host name and returns only addresses the policy allows; a name
    with any forbidden address is refused outright (as `check_url` does)."""

    def __init__(self, policy: SSRFPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        addresses = await resolve(name, port)
        if not addresses:
            raise OSError(f"host {host!r} has no addresses")
        if name not in self.policy.allow_hosts:
            for ip in addresses:
                if not is_public_ip(ip) and not _allowed(ip, self.policy):
                    raise SSRFBlocked(f"host {host!r} resolves to a non-public address ({ip})")
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for ip in addresses
        ]

    async def close(self) -> None:
        return None


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


class SafeHTTPClient:
    """An aiohttp session that only reaches what the SSRF policy allows."""

    def __init__(
        self,
        policy: SSRFPolicy | None = None,
        *,
        user_agent: str = DEFAULT_USER_AGENT,
        ssl: Any = True,
    ) -> None:
        self.policy = policy or SSRFPolicy()
        self.user_agent = user_agent
        self._ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SafeHTTPClient:
        self._get_session()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=VettedResolver(self.policy), use_dns_cache=False, ssl=self._ssl, limit=64
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # never a proxy from the environment
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        timeout_s: float = 10.0,
        max_bytes: int = 1_000_000,
        max_redirects: int = 5,
        follow_redirects: bool = True,
        read_body: bool = True,
    ) -> FetchResult:
        """One request (plus redirects), all within `timeout_s`. Raises SSRFBlocked
        for a refused URL or hop, FetchError for network failures and timeouts."""
        span = start_span(f"fetch {method.upper()}", kind="client", attributes={"url.full": url[:500]})
        sent = dict(headers or {})
        sent.setdefault(TRACEPARENT, span.traceparent)
        status: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(timeout_s):
                result = await self._request(
                    method.upper(),
                    url,
                    sent,
                    data,
                    max_bytes,
                    max_redirects,
                    follow_redirects,
                    read_body,
                )
                status = result.status
                return result
        except TimeoutError as exc:
            error = "timeout"
            raise FetchError(f"timed out after {timeout_s:g} s") from exc
        except SSRFBlocked:
            error = "blocked"
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            span.end(status, error)
            FETCHES.labels("ok" if error is None else error if error in ("timeout", "blocked") else "error").inc()

    async def _request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        data: bytes | None,
        max_bytes: int,
        max_redirects: int,
        follow_redirects: bool,
        read_body: bool,
    ) -> FetchResult:
        session = self._get_session()
        headers.setdefault("User-Agent", self.user_agent)
        redirects: list[str] = []
        start = time.perf_counter()
        current = url
        while True:
            await check_url(current, self.policy)  # every hop, IP literals included
            try:
                async with session.request(
                    method,
                    current,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    max_line_size=16384,
                    max_field_size=16384,
                ) as resp:
                    location = resp.headers.get("Location")
                    if follow_redirects and resp.status in REDIRECT_STATUSES and location:
                        if len(redirects) >= max_redirects:
                            raise FetchError(f"too many redirects (more than {max_redirects})")
                        nxt = urljoin(current, location)
                        redirects.append(current)
                        if not _same_origin(current, nxt):
                            headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
                        if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                            method, data = ("HEAD" if method == "HEAD" else "GET"), None
                            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                        current = nxt
                        continue
                    body, truncated = b"", False
                    if read_body:
                        chunks: list[bytes] = []
                        size = 0
                        async for chunk in resp.content.iter_chunked(65536):
                            size += len(chunk)
                            if size > max_bytes:
                                chunks.append(chunk[: max_bytes - (size - len(chunk))])
                                truncated = True
                                break
                            chunks.append(chunk)
                        body = b"".join(chunks)
                    return FetchResult(
                        url=str(resp.url),
                        status=resp.status,
                        headers={str(k): str(v) for k, v in resp.headers.items()},
                        body=body,
                        truncated=truncated,
                        redirects=redirects,
                        elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
                    )
            except SSRFBlocked:
                raise
            except aiohttp.ClientConnectorError as exc:
                inner = exc.os_error
                if isinstance(inner, SSRFBlocked):
                    raise inner from exc
                raise FetchError(f"cannot connect to {urlsplit(current).hostname}: {inner.strerror or inner}") from exc
            except aiohttp.ClientError as exc:
                raise FetchError(f"request failed: {exc.__class__.__name__}: {exc}") from exc


async def fetch(method: str, url: str, policy: SSRFPolicy | None = None, **kwargs: Any) -> FetchResult:
    """A one-off request with a fresh client (see `SafeHTTPClient.request`)."""
    async with SafeHTTPClient(policy) as client:
        return await client.request(method, url, **kwargs)
