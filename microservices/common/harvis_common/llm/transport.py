"""The HTTP side both LLM clients share: a pooled aiohttp session, timeouts, one retry of a
request on a connection the backend had closed, non-streamed JSON calls and streamed lines,
every failure mapped to an `LLMError`."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from ..tracing import Span, start_span
from .errors import LLMError, LLMTimeout, LLMUnavailable, error_for_answer


class Transport:
    provider = "base"

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
        request_timeout_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """`read_timeout_s` bounds the wait for each piece of a stream (the first one
        includes loading the model); `request_timeout_s` bounds non-streamed calls."""
        self.base_url = base_url.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.request_timeout_s = request_timeout_s
        self._session = session
        self._own_session = session is None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Idle connections are dropped before uvicorn's 5 s keep-alive (llama-cpp-python's
            # server) closes them under us: reusing one it closed was a "connection reset".
            connector = aiohttp.TCPConnector(limit=64, enable_cleanup_closed=True, keepalive_timeout=4)
            self._session = aiohttp.ClientSession(connector=connector)
            self._own_session = True
        return self._session

    def _headers(self) -> dict[str, str]:
        """Sent with every request (not set on the session: a session passed in, e.g. an
        SSRF-vetting one, is used with this client's own credentials)."""
        return {}

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s, sock_read=self.read_timeout_s)

    def _request_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.request_timeout_s, sock_connect=self.connect_timeout_s)

    def _unavailable(self, exc: BaseException) -> LLMUnavailable:
        return LLMUnavailable(
            f"The language model backend ({self.provider} at {self.base_url}) is not reachable: {exc}"
        )

    def _no_answer(self, exc: BaseException, late: str) -> LLMError:
        """A request that got no answer: a timeout once connected is an LLMTimeout ("The
        backend {late}"); not connecting at all, in time or otherwise, is LLMUnavailable."""
        if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
            return LLMTimeout(f"The {self.provider} backend {late}")
        return self._unavailable(exc)

    async def _error_from(self, resp: aiohttp.ClientResponse, model: str | None) -> LLMError:
        try:
            text = (await resp.text())[:2000]
        except Exception:  # the body is only for the message
            text = ""
        return error_for_answer(self.provider, resp.status, resp.reason, text, model)

    def _span(self, method: str, path: str, model: str | None) -> Span:
        """The model call's client span (its `traceparent` goes to the backend)."""
        return start_span(
            f"llm {method} {path}",
            kind="client",
            attributes={"server.address": self.base_url, "gen_ai.system": self.provider, "gen_ai.request.model": model},
        )

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool = False, span: Span | None = None
    ) -> aiohttp.ClientResponse:
        """A request on a pooled keep-alive connection that the backend closed meanwhile fails
        with ServerDisconnected or a reset before anything came back (llama-cpp-python's server
        closes a connection after some streams): the backend never read it, so it goes once more,
        on a new connection."""
        timeout = self._stream_timeout() if stream else self._request_timeout()
        headers = self._headers()
        if span is not None:
            headers = {**headers, "traceparent": span.traceparent}
        url, kw = self.base_url + path, {"json": body, "headers": headers, "timeout": timeout}
        try:
            return await self._http().request(method, url, **kw)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if isinstance(exc, aiohttp.ClientOSError) and exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
        return await self._http().request(method, url, **kw)

    async def _get_json(self, path: str) -> Any:
        return await self._request_json("GET", path, None, None)

    async def _post_json(self, path: str, body: dict[str, Any], model: str | None) -> Any:
        return await self._request_json("POST", path, body, model)

    async def _request_json(self, method: str, path: str, body: dict[str, Any] | None, model: str | None) -> Any:
        """One non-streamed call, every transport failure mapped to an LLMError."""
        span = self._span(method, path, model)
        status: int | None = None
        error: str | None = None
        try:
            async with await self._send(method, path, body, span=span) as resp:
                status = resp.status
                if resp.status >= 400:
                    raise await self._error_from(resp, model)
                return await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            error = type(exc).__name__
            raise self._no_answer(exc, f"did not answer {path} in time") from exc
        except (aiohttp.ContentTypeError, ValueError) as exc:
            error = "invalid answer"
            raise LLMError(f"The {self.provider} backend sent an invalid answer to {path}") from exc
        finally:
            span.end(status, error)

    async def _stream_lines(self, path: str, body: dict[str, Any], model: str) -> AsyncIterator[bytes]:
        """POST `body` and yield the response's non-empty lines; the connection is
        closed (not pooled) when the consumer stops early, so generation stops."""
        resp: aiohttp.ClientResponse | None = None
        finished = False
        lines = 0
        span = self._span("POST", path, model)
        try:
            try:
                resp = await self._send("POST", path, body, stream=True, span=span)
            except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
                raise self._no_answer(exc, "did not start answering in time") from exc
            if resp.status >= 400:
                raise await self._error_from(resp, model)
            try:
                async for raw in resp.content:
                    line = raw.strip()
                    if line:
                        lines += 1
                        yield line
            except TimeoutError as exc:
                raise LLMTimeout(
                    f"The {self.provider} backend stopped answering (no data for {self.read_timeout_s:g} s)"
                ) from exc
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise LLMUnavailable(f"The {self.provider} backend broke off the answer: {exc}") from exc
            finished = True
        finally:
            span.end(resp.status if resp is not None else None, None if finished else "unfinished")
            if resp is not None:
                if finished and lines:
                    resp.release()
                else:
                    # Drop the connection: the backend sees the client go; and a backend that
                    # failed the request mid-way (an empty stream) may have closed it already.
                    resp.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session and not self._session.closed:
            await self._session.close()
        self._session = None
