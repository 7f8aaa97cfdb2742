"""POST /api/web-search and /api/research/sources: search results (and their pages'
extracted text), or the research step alone for a caller that writes its own answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from harvis_common.quotas import QUOTA_RESPONSES

from ..deps import Caller, charge_turns, researcher_of, settings_of
from ..schemas import SourcesRequest, WebSearchRequest

router = APIRouter(tags=["research"])


@router.post("/api/web-search", responses=QUOTA_RESPONSES)
async def web_search(body: WebSearchRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity)
    researcher = researcher_of(request)
    results, errors = await researcher.search(body.query, body.max_results)
    extracted: list[dict[str, Any]] = []
    if body.extract_content and results:
        extracted, unread = await researcher.extract(results)
        errors += unread
    return {
        "query": body.query,
        "search_results": [r.as_dict() for r in results],
        "extracted_content": extracted,
        "errors": errors,
    }


@router.post("/api/research/sources", responses=QUOTA_RESPONSES)
async def research_sources(body: SourcesRequest, identity: Caller, request: Request) -> dict[str, Any]:
    """The research step alone — search, read, rank — for a caller that writes its own answer
    (voice's mic-chat in research mode): numbered sources and the excerpts under their numbers,
    ready to cite as [n]. A turn of the user's, whoever calls for them."""
    await charge_turns(request, identity)
    max_sources = body.max_sources or settings_of(request).research_max_sources
    research = await researcher_of(request).research(body.query, max_sources)
    return {
        "query": body.query,
        "sources": research.public_sources(),
        "context": research.context(),
        "errors": research.errors,
        "elapsed_s": research.elapsed_s,
    }
