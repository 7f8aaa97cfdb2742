"""mic-chat's research mode: web sources from research-service, for the user who spoke.

The gateway's token for this request names voice-service as its audience, so it is
no good at research-service. core-api's token exchange (`/internal/token`) gives a
token for research-service for the same user; with it, research-service's
`/api/research/sources` searches, reads and ranks, and returns numbered sources and
their excerpts. The answer itself is written here, for speech.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harvis_common.core_client import CoreClient, CoreClientError
from harvis_common.internal_auth import HEADER

from .settings import Settings

log = logging.getLogger("voice.research")

RESEARCH_AUDIENCE = "research-service"


class ResearchUnavailable(Exception):
    """No sources could be had: the reason, for the user's notice."""


@dataclass
class Findings:
    sources: list[dict[str, Any]] = field(default_factory=list)  # numbered from 1, what [n] cites
    context: str = ""  # the excerpts under their numbers
    errors: list[str] = field(default_factory=list)

    def cited(self) -> list[dict[str, Any]]:
        """Title and address of each source, as the history keeps them."""
        return [{"index": s.get("index"), "title": s.get("title"), "url": s.get("url")} for s in self.sources]


async def _quota_message(resp: aiohttp.ClientResponse) -> str:
    try:
        message = (await resp.json()).get("message")
    except (aiohttp.ClientError, ValueError, AttributeError):
        message = None
    return str(message)[:300] if message else "research-service answered 429"


class WebResearch:
    def __init__(self, settings: Settings, core: CoreClient) -> None:
        self.base_url = settings.research_service_url.rstrip("/")
        self.max_sources = settings.voice_research_max_sources
        self.timeout = aiohttp.ClientTimeout(total=settings.voice_research_timeout_s, sock_connect=3)
        self.core = core
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        return self._session

    async def find(self, token: str, query: str) -> Findings:
        """Sources for `query`, acting for the user of `token` (this request's X-Internal-Auth)."""
        try:
            research_token = await self.core.delegate(token, RESEARCH_AUDIENCE)
        except CoreClientError as exc:
            log.warning("no research-service token", extra={"error": str(exc)})
            raise ResearchUnavailable("core-api gave no token for research-service") from exc
        body = {"query": query[:2000], "max_sources": self.max_sources}
        try:
            async with self._http().post(
                self.base_url + "/api/research/sources", json=body, headers={HEADER: research_token}
            ) as resp:
                if resp.status == 429:  # the user's research quota: say which, and when it resets
                    raise ResearchUnavailable(await _quota_message(resp))
                if resp.status >= 400:
                    detail = (await resp.text())[:300]
                    log.warning("research-service refused", extra={"status": resp.status, "error": detail})
                    raise ResearchUnavailable(f"research-service answered {resp.status}")
                data = await resp.json()
        except TimeoutError as exc:  # first: aiohttp's read timeouts are ClientErrors too
            raise ResearchUnavailable("research-service took too long") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise ResearchUnavailable("research-service is not reachable") from exc
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            raise ResearchUnavailable("research-service gave no sources")
        return Findings(
            sources=[s for s in data["sources"] if isinstance(s, dict)],
            context=str(data.get("context") or ""),
            errors=[str(e) for e in data.get("errors") or []],
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
