"""Search providers behind one interface: ddgs (no key), SearXNG's JSON API, Tavily.

`SearchEngine.search(query, n)` tries the configured providers in order; one that fails
or times out falls back to the next. Results are deduplicated by normalised URL and
carry a `relevance_score` in [0, 1].
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from .settings import Settings

log = logging.getLogger("research.search")

_TRACKING = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "ref_src")


@dataclass(slots=True)
class SearchResult:
    title: str
    url: str
    snippet: str
    source: str  # the provider (and engine) that found it
    relevance_score: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SearchError(Exception):
    """A provider could not answer."""


def normalize_url(url: str) -> str:
    """The key results are deduplicated by: lower-case scheme and host, no `www.`, no default
    port, no fragment, no tracking parameters, no trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    port = parts.port if parts.port and parts.port != {"http": 80, "https": 443}.get(scheme) else None
    netloc = f"{host}:{port}" if port else host
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.lower().startswith(_TRACKING)]
    path = parts.path.rstrip("/") or ""
    scheme = "https" if scheme in ("http", "https") else scheme  # http and https copies are one page
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def domain_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def dedupe(results: list[SearchResult]) -> list[SearchResult]:
    seen: set[str] = set()
    out: list[SearchResult] = []
    for r in results:
        if not r.url.lower().startswith(("http://", "https://")):
            continue
        key = normalize_url(r.url)
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def _rank_scores(results: list[SearchResult]) -> None:
    """A provider without scores: relevance by rank (1.0 for the first, decreasing)."""
    n = len(results)
    for i, r in enumerate(results):
        r.relevance_score = round(1.0 - i / max(n, 1) * 0.9, 3)


class Provider(Protocol):
    name: str

    async def search(self, query: str, max_results: int) -> list[SearchResult]: ...


class DDGSProvider:
    """The `ddgs` metasearch library (no key; reaches public engines). Blocking: run in a thread."""

    name = "ddgs"

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    @staticmethod
    def parse(raw: list[dict[str, Any]]) -> list[SearchResult]:
        out = []
        for item in raw or []:
            url = str(item.get("href") or item.get("url") or "")
            if not url:
                continue
            out.append(
                SearchResult(
                    title=str(item.get("title") or url),
                    url=url,
                    snippet=str(item.get("body") or item.get("snippet") or ""),
                    source="ddgs",
                )
            )
        _rank_scores(out)
        return out

    def _run(self, query: str, max_results: int) -> list[dict[str, Any]]:
        from ddgs import DDGS  # imported lazily: it is only needed when used

        return DDGS(timeout=int(max(1, self.timeout_s))).text(query, max_results=max_results)

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            raw = await asyncio.to_thread(self._run, query, max_results)
        except Exception as exc:  # ddgs raises its own DDGSException family and network errors
            raise SearchError(f"ddgs: {exc.__class__.__name__}: {exc}") from exc
        return self.parse(raw)


class SearXNGProvider:
    """A SearXNG instance's JSON API: `GET /search?q=…&format=json`."""

    name = "searxng"

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    @staticmethod
    def parse(body: dict[str, Any]) -> list[SearchResult]:
        raw = body.get("results") or []
        out = []
        scores = [float(r.get("score") or 0) for r in raw if isinstance(r, dict)]
        top = max(scores, default=0) or 1.0
        for item in raw:
            if not isinstance(item, dict) or not item.get("url"):
                continue
            engines = item.get("engines") or ([item["engine"]] if item.get("engine") else [])
            out.append(
                SearchResult(
                    title=str(item.get("title") or item["url"]),
                    url=str(item["url"]),
                    snippet=str(item.get("content") or ""),
                    source="searxng" + (f" ({', '.join(map(str, engines))})" if engines else ""),
                    relevance_score=round(min(1.0, float(item.get("score") or 0) / top), 3),
                )
            )
        if not any(r.relevance_score for r in out):
            _rank_scores(out)
        return out

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        params = {"q": query, "format": "json", "safesearch": "1"}
        try:
            async with self.http.get(f"{self.base_url}/search", params=params) as resp:
                if resp.status != 200:
                    raise SearchError(f"searxng answered {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise SearchError(f"searxng: {exc}") from exc
        if not isinstance(body, dict):
            raise SearchError("searxng sent an invalid answer")
        return self.parse(body)[:max_results]


class TavilyProvider:
    """Tavily's search API: `POST /search` with a Bearer key."""

    name = "tavily"

    def __init__(self, base_url: str, api_key: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = http

    @staticmethod
    def parse(body: dict[str, Any]) -> list[SearchResult]:
        out = []
        for item in body.get("results") or []:
            if not isinstance(item, dict) or not item.get("url"):
                continue
            out.append(
                SearchResult(
                    title=str(item.get("title") or item["url"]),
                    url=str(item["url"]),
                    snippet=str(item.get("content") or ""),
                    source="tavily",
                    relevance_score=round(max(0.0, min(1.0, float(item.get("score") or 0))), 3),
                )
            )
        return out

    async def search(self, query: str, max_results: int) -> list[SearchResult]:
        body = {"query": query, "max_results": max_results, "search_depth": "basic"}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            async with self.http.post(f"{self.base_url}/search", json=body, headers=headers) as resp:
                if resp.status != 200:
                    raise SearchError(f"tavily answered {resp.status}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise SearchError(f"tavily: {exc}") from exc
        if not isinstance(data, dict):
            raise SearchError("tavily sent an invalid answer")
        return self.parse(data)[:max_results]


class SearchEngine:
    """The configured providers in order, with fallback and deduplication."""

    def __init__(self, providers: list[Provider], timeout_s: float) -> None:
        self.providers = providers
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings, http: aiohttp.ClientSession) -> SearchEngine:
        providers: list[Provider] = []
        for name in settings.provider_order:
            if name == "searxng" and settings.searxng_url:
                providers.append(SearXNGProvider(settings.searxng_url, http))
            elif name == "tavily" and settings.tavily_api_key:
                providers.append(TavilyProvider(settings.tavily_api_url, settings.tavily_api_key, http))
            elif name == "ddgs":
                providers.append(DDGSProvider(settings.research_search_timeout_s))
        return cls(providers, settings.research_search_timeout_s)

    async def search(self, query: str, max_results: int) -> tuple[list[SearchResult], list[str]]:
        """(results, errors of the providers that failed before one answered)."""
        errors: list[str] = []
        for provider in self.providers:
            try:
                async with asyncio.timeout(self.timeout_s):
                    results = await provider.search(query, max_results * 2)
            except TimeoutError:
                errors.append(f"{provider.name}: timed out after {self.timeout_s:g} s")
                continue
            except SearchError as exc:
                errors.append(str(exc))
                continue
            results = dedupe(results)
            if results:
                return results[:max_results], errors
            errors.append(f"{provider.name}: no results")
        if errors:
            log.warning("search found nothing", extra={"query": query[:200], "errors": errors})
        return [], errors
