"""Fetching result pages and extracting their main text.

Every fetch goes through `harvis_common.http_client.SafeHTTPClient`: only http/https, each
redirect hop re-checked by the SSRF guard, the connection made only to vetted addresses.
Pages are fetched concurrently (at most `concurrency` at once), each within
`page_timeout_s`, all within `budget_s` (a slow page is dropped, never waited for); bodies
are capped at `max_bytes`; only HTML/XHTML/plain text is read. trafilatura extracts the
main text and metadata (title, author, date, site name), off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from harvis_common.http_client import FetchError, SafeHTTPClient
from harvis_common.ssrf import SSRFBlocked

from .providers import normalize_url
from .store.cache import cache_key

log = logging.getLogger("research.fetch")

HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
MAX_CONTENT_CHARS = 60_000


@dataclass(slots=True)
class Page:
    url: str
    final_url: str = ""
    title: str = ""
    content: str = ""
    author: str | None = None
    date: str | None = None
    sitename: str | None = None
    description: str | None = None
    error: str | None = None  # why there is no content
    blocked: bool = False  # refused by the SSRF guard
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.content)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Fetched:
    """A fetched page's body, decoded, before extraction (or why there is none)."""

    url: str
    final_url: str = ""
    mime: str = ""
    text: str = ""
    error: str | None = None
    blocked: bool = False
    elapsed_ms: float = 0.0


_CHARSET = re.compile(r"charset=([\w.-]+)", re.I)


def _decode(body: bytes, content_type: str) -> str:
    m = _CHARSET.search(content_type)
    enc = m.group(1) if m else "utf-8"
    try:
        return body.decode(enc, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def extract(html: str, url: str) -> dict[str, Any]:
    """Main text and metadata of an HTML page (blocking: call in a thread)."""
    import trafilatura

    doc = trafilatura.bare_extraction(
        html, url=url, include_comments=False, include_tables=True, favor_precision=True, with_metadata=True
    )
    if doc is None:
        return {}
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    return {
        "title": data.get("title") or "",
        "content": (data.get("text") or "").strip(),
        "author": data.get("author"),
        "date": data.get("date"),
        "sitename": data.get("sitename"),
        "description": data.get("description"),
    }


class PageFetcher:
    def __init__(
        self,
        http: SafeHTTPClient,
        cache: Any,
        *,
        page_timeout_s: float,
        budget_s: float,
        max_bytes: int,
        concurrency: int,
    ) -> None:
        self.http = http
        self.cache = cache
        self.page_timeout_s = page_timeout_s
        self.budget_s = budget_s
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self.fetched = 0  # pages really fetched (not from the cache)

    async def fetch_one(self, url: str) -> Page:
        key = cache_key("page", normalize_url(url))
        cached = await self.cache.get(key)
        if cached is not None:
            return Page(**cached)
        page = await self._fetch(url)
        if page.ok:
            await self.cache.set(key, page.as_dict())
        return page

    async def fetch_text(self, url: str) -> Fetched:
        """A page's body as text when it is a web page (HTML, XHTML or plain text) that answered
        200; else why not. The knowledge base extracts it its own way."""
        start = time.perf_counter()
        try:
            res = await self.http.request(
                "GET",
                url,
                headers={"Accept": "text/html,application/xhtml+xml,text/plain;q=0.8"},
                timeout_s=self.page_timeout_s,
                max_bytes=self.max_bytes,
            )
        except SSRFBlocked as exc:
            log.info("page refused by the SSRF guard", extra={"url": url[:300], "reason": str(exc)})
            return Fetched(url=url, error=f"blocked: {exc}", blocked=True)
        except FetchError as exc:
            return Fetched(url=url, error=str(exc))
        self.fetched += 1
        elapsed = round((time.perf_counter() - start) * 1000, 1)
        if res.status != 200:
            return Fetched(url=url, final_url=res.url, error=f"HTTP {res.status}", elapsed_ms=elapsed)
        ctype = res.headers.get("Content-Type", res.headers.get("content-type", "")).lower()
        mime = ctype.split(";")[0].strip()
        if mime not in HTML_TYPES + TEXT_TYPES:
            return Fetched(
                url=url, final_url=res.url, error=f"not a web page ({mime or 'no content type'})", elapsed_ms=elapsed
            )
        return Fetched(url=url, final_url=res.url, mime=mime, text=_decode(res.body, ctype), elapsed_ms=elapsed)

    async def _fetch(self, url: str) -> Page:
        got = await self.fetch_text(url)
        if got.error:
            return Page(
                url=url, final_url=got.final_url, error=got.error, blocked=got.blocked, elapsed_ms=got.elapsed_ms
            )
        elapsed = got.elapsed_ms
        if got.mime in TEXT_TYPES:
            data = {"title": "", "content": got.text.strip()}
        else:
            try:
                data = await asyncio.to_thread(extract, got.text, got.final_url)
            except Exception as exc:  # a page that breaks the extractor is just skipped
                return Page(url=url, final_url=got.final_url, error=f"extraction failed: {exc}", elapsed_ms=elapsed)
        content = (data.get("content") or "")[:MAX_CONTENT_CHARS]
        if not content:
            return Page(url=url, final_url=got.final_url, error="no main text found", elapsed_ms=elapsed)
        return Page(
            url=url,
            final_url=got.final_url,
            title=data.get("title") or "",
            content=content,
            author=data.get("author"),
            date=data.get("date"),
            sitename=data.get("sitename"),
            description=data.get("description"),
            elapsed_ms=elapsed,
        )

    async def fetch_many(self, urls: list[str]) -> list[Page]:
        """Pages in the order of `urls`; those not done within the budget come back with an error."""
        sem = asyncio.Semaphore(self.concurrency)

        async def one(u: str) -> Page:
            async with sem:
                return await self.fetch_one(u)

        tasks = [asyncio.create_task(one(u)) for u in urls]
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=self.budget_s)
        for t in pending:
            t.cancel()
        pages = []
        for u, t in zip(urls, tasks, strict=True):
            if t in done and t.exception() is None:
                pages.append(t.result())
            elif t in done:
                pages.append(Page(url=u, error=f"failed: {t.exception()}"))
            else:
                pages.append(Page(url=u, error=f"not fetched within the {self.budget_s:g} s budget"))
        return pages
