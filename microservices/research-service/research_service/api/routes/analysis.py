"""POST /api/fact-check and /api/comparative-research: a claim judged, or topics compared,
from web research (`analysis.py` does the work). A comparison costs one research turn per
topic: each is researched on its own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from harvis_common.llm import LLMError
from harvis_common.quotas import QUOTA_RESPONSES

from ...analysis import check_claim, compare_topics
from ..deps import Caller, charge_turns, llm_error, researcher_of, settings_of
from ..schemas import CompareRequest, FactCheckRequest

router = APIRouter(tags=["research"])


def _limits(request: Request) -> dict[str, Any]:
    """How many sources and answer tokens a fact-check or comparison may use."""
    config = settings_of(request)
    return {"max_sources": config.research_max_sources, "max_tokens": config.chat_max_tokens or None}


@router.post("/api/fact-check", responses=QUOTA_RESPONSES)
async def fact_check(body: FactCheckRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity)
    try:
        checked = await check_claim(researcher_of(request), body.claim, body.model, **_limits(request))
    except LLMError as exc:
        raise llm_error(exc) from exc
    return {
        "claim": body.claim,
        "verdict": checked.verdict,
        "confidence": checked.confidence,
        "analysis": checked.analysis,
        "sources": checked.sources,
        "model_used": checked.model,
        "timestamp": checked.timestamp,
    }


@router.post("/api/comparative-research", responses=QUOTA_RESPONSES)
async def comparative_research(body: CompareRequest, identity: Caller, request: Request) -> dict[str, Any]:
    await charge_turns(request, identity, len(body.topics))  # each topic is researched on its own
    try:
        comparison = await compare_topics(researcher_of(request), body.topics, body.model, **_limits(request))
    except LLMError as exc:
        raise llm_error(exc) from exc
    return {
        "topics": body.topics,
        "individual_research": comparison.individual,
        "comparative_analysis": comparison.analysis,
        "sources": comparison.sources,
        "model_used": comparison.model,
        "timestamp": comparison.timestamp,
    }
