"""Research turns per user per hour (`RESEARCH_TURNS_PER_HOUR`): every route here searches
the web (a paid API such as Tavily, or someone's SearXNG), fetches pages and most run the
model, so they share one quota — a comparison costs one turn per topic it researches.

The machinery is the fleet's (`harvis_common.quotas`): a rolling window, checked and counted
in one atomic step — in Redis when REDIS_URL is set (keys under RESEARCH_REDIS_PREFIX +
"quota:", shared by every replica), else in this process."""

from __future__ import annotations

from fastapi import Request

from harvis_common.internal_auth import Identity
from harvis_common.quotas import Quota, Quotas, charge

from .settings import Settings

RESEARCH_TURNS = "research"


def research_quotas(settings: Settings) -> Quotas:
    return Quotas(
        [Quota(RESEARCH_TURNS, "research turns", settings.research_turns_per_hour, 3600)],
        redis_url=settings.redis_url,
        prefix=settings.research_redis_prefix + "quota:",
    )


async def charge_turns(request: Request, identity: Identity, turns: int = 1) -> None:
    """Count the caller's turns, or raise the 429 (Retry-After, JSON detail/message)."""
    await charge(request.app.state.quotas, identity.user_id, RESEARCH_TURNS, turns)
