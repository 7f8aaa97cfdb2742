"""Grounded chat: the user's knowledge base (research-service's `POST /api/rag/search`) searched
for a chat turn, as that user, and the relevant excerpts numbered for the prompt and cited in
`complete` (chat/turn.py).

research-service is called directly (not through the gateway: core-api is the gateway) with an
`X-Internal-Auth` token core-api signs for audience `research-service`, naming the user of the
turn, so the search sees exactly what that user sees (their uploads and the shared sources).

A hit is relevant when its vector similarity reaches `CHAT_KB_MIN_SIMILARITY`, or when it holds
at least half of the question's rarer terms (exact identifiers, error codes), as research chat
decides. Excerpts are grouped by document, one number per document, like research chat's
sources.

The knowledge base is optional: research-service down, slow (`CHAT_KB_TIMEOUT_S`), without a
database (503) or answering anything unexpected means no excerpts and a log line, never a
failed chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harvis_common.internal_auth import HEADER, InternalSigner
from harvis_common.logging import request_id_var

from ..auth.context import AuthUser

log = logging.getLogger("harvis.chat.knowledge")

AUDIENCE = "research-service"
SEARCH_PATH = "/api/rag/search"
MIN_TERMS_MATCHED = 0.5  # research-service's own rule for exact-term hits (knowledge/base.py)
MAX_QUERY_CHARS = 2000  # research-service's search query limit is larger; a question past this is cut
MAX_EXCERPT_CHARS = 2000  # one excerpt in the prompt (a chunk is ~1000 characters)

GROUNDING_INSTRUCTIONS = (
    "Excerpts of the user's own documents (their knowledge base) that may answer the question "
    "follow, numbered. Use them where they are relevant and cite every fact taken from them with "
    "its number in square brackets, like [1] or [1][2]. If they do not answer the question, say so "
    "or answer from general knowledge, saying which; never invent sources."
)


@dataclass
class Grounding:
    """What the knowledge base gave a turn: the numbered sources (one per document) with their
    excerpts, and why there are none when it could not be searched."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    excerpts: dict[int, list[str]] = field(default_factory=dict)  # source index → excerpt texts
    hits: int = 0
    error: str | None = None

    @property
    def used(self) -> bool:
        return bool(self.sources)

    def report(self) -> dict[str, Any]:
        """`complete`'s `knowledge_base`, as research chat's: {used, hits, error}."""
        return {"used": self.used, "hits": self.hits, "error": self.error}

    def context(self) -> str:
        """The excerpts for the system prompt: each document under its number."""
        parts = [GROUNDING_INSTRUCTIONS]
        for src in self.sources:
            where = ", ".join(src["locations"])
            head = f"[{src['index']}] {src['document']}" + (f" ({where})" if where else "")
            parts.append(head + "\n" + "\n…\n".join(self.excerpts.get(src["index"], [])))
        return "\n\n".join(parts)


def relevant(hit: dict[str, Any], min_similarity: float) -> bool:
    similarity = hit.get("similarity")
    terms = hit.get("terms_matched")
    close = isinstance(similarity, (int, float)) and similarity >= min_similarity
    exact = isinstance(terms, (int, float)) and terms >= MIN_TERMS_MATCHED
    return close or exact


def ground(results: list[Any], min_similarity: float) -> Grounding:
    """The relevant results (best first, as research-service ranks them) as numbered sources."""
    grounding = Grounding()
    by_doc: dict[str, dict[str, Any]] = {}
    for hit in results:
        if not isinstance(hit, dict) or not isinstance(hit.get("text"), str) or not relevant(hit, min_similarity):
            continue
        document = str(hit.get("document") or "document")
        key = str(hit.get("document_id") or document)
        location = str(hit.get("location") or "")
        src = by_doc.get(key)
        if src is None:
            src = by_doc[key] = {
                "index": len(grounding.sources) + 1,
                "title": document,
                "document": document,
                "document_id": hit.get("document_id"),
                "source": str(hit.get("source") or ""),
                "location": location,
                "locations": [],
                "snippet": hit["text"][:300],
            }
            grounding.sources.append(src)
        if location and location not in src["locations"]:
            src["locations"].append(location)
        text = hit["text"][:MAX_EXCERPT_CHARS]
        grounding.excerpts.setdefault(src["index"], []).append(f"({location}) {text}" if location else text)
        grounding.hits += 1
    return grounding


class KnowledgeClient:
    """research-service's knowledge-base search, for chat turns. One aiohttp session (closed by
    `close`); each call signs a fresh token for the turn's user."""

    def __init__(self, base_urls: Sequence[str], *, timeout_s: float, k: int, min_similarity: float) -> None:
        # One base URL per research-service replica (RESEARCH_SERVICE_URL may list several). Not
        # the gateway's upstream pools: this is an aiohttp client of its own, so it balances the
        # same way itself: the search is stateless, calls take turns, and one that can't connect
        # (nothing was sent) goes to the next replica.
        self.urls = [url.rstrip("/") + SEARCH_PATH for url in base_urls]
        self._turn = 0
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.k = k
        self.min_similarity = min_similarity
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: a proxy from the environment must never see the internal token.
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def search(self, signer: InternalSigner | None, user: AuthUser, question: str) -> Grounding:
        """The relevant excerpts for `question` in `user`'s knowledge base; never raises (but
        for cancellation): a failure is a Grounding with no sources and the reason."""
        if signer is None:
            return Grounding(error="The knowledge base is not available")
        token = signer.sign(
            AUDIENCE,
            user_id=user.id,
            email=user.email,
            username=user.username,
            is_admin=user.is_admin,
            request_id=request_id_var.get(),
        )
        body = {"query": question[:MAX_QUERY_CHARS], "k": self.k}
        try:
            async with asyncio.timeout(self.timeout.total):  # one budget, however many replicas are tried
                status, payload = await self._post(body, {HEADER: token})
            if status != 200:
                log.warning("knowledge base unavailable for chat", extra={"status": status, "detail": payload})
                return Grounding(error="The knowledge base is not available")
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.warning("knowledge base search timed out for chat", extra={"timeout_s": self.timeout.total})
            return Grounding(error="The knowledge base did not answer in time")
        except Exception as exc:  # down, refused, a broken answer: the chat goes on without it
            log.warning("knowledge base search failed for chat", extra={"error": repr(exc)})
            return Grounding(error="The knowledge base could not be searched")
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            log.warning("knowledge base answered without results for chat")
            return Grounding(error="The knowledge base could not be searched")
        return ground(results, self.min_similarity)

    async def _post(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        """(200, the JSON answer) or (another status, the start of its body), from the replica
        whose turn it is or, when it can't be connected to, the next."""
        first = self._turn
        self._turn = (first + 1) % len(self.urls)
        order = self.urls[first:] + self.urls[:first]
        for url in order[:-1]:
            with contextlib.suppress(aiohttp.ClientConnectorError):
                return await self._post_to(url, body, headers)
        return await self._post_to(order[-1], body, headers)

    async def _post_to(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        async with self._client().post(url, json=body, headers=headers) as r:
            if r.status != 200:
                return r.status, (await r.text())[:200]
            return 200, await r.json(content_type=None)
