"""What the routes depend on: the caller, the objects the lifespan put on app.state, the
research quota and the mapping of model errors to HTTP.

Research turns per user per hour (`RESEARCH_TURNS_PER_HOUR`): every route here searches
the web (a paid API such as Tavily, or someone's SearXNG), fetches pages and most run the
model, so they share one quota — a comparison costs one turn per topic it researches.

The machinery is the fleet's (`harvis_common.quotas`): a rolling window, checked and counted
in one atomic step — in Redis when REDIS_URL is set (keys under RESEARCH_REDIS_PREFIX +
"quota:", shared by every replica), else in this process."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from harvis_common.core_client import CoreClient
from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.llm import LLMError
from harvis_common.quotas import Quota, Quotas, charge

from ..research import Researcher
from ..settings import Settings

Caller = Annotated[Identity, Depends(current_identity)]

RESEARCH_TURNS = "research"


def research_quotas(settings: Settings) -> Quotas:
    return Quotas.for_service(
        [Quota(RESEARCH_TURNS, "research turns", settings.research_turns_per_hour, 3600)],
        redis_url=settings.redis_url,
        service_prefix=settings.research_redis_prefix,
    )


async def charge_turns(request: Request, identity: Identity, turns: int = 1) -> None:
    """Count the caller's turns, or raise the 429 (Retry-After, JSON detail/message)."""
    await charge(request.app.state.quotas, identity.user_id, RESEARCH_TURNS, turns)


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def researcher_of(request: Request) -> Researcher:
    return request.app.state.researcher


def history_of(request: Request) -> CoreClient:
    return request.app.state.history


def llm_error(exc: LLMError) -> HTTPException:
    return HTTPException(exc.status, exc.message)
