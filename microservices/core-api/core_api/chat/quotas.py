"""Chat turns per user per hour (`CHAT_TURNS_PER_HOUR`), /api/chat and /api/vision-chat
together: every turn runs the model, the costliest thing core-api does for a user.

The machinery is the fleet's (`harvis_common.quotas`): a rolling window, checked and counted
in one atomic step — in Redis when REDIS_URL is set (keys under REDIS_KEY_PREFIX + "quota:",
shared by every replica), else in this process."""

from __future__ import annotations

from harvis_common.quotas import Quota, Quotas

from ..settings import Settings

CHAT_TURNS = "chat"


def chat_quotas(settings: Settings) -> Quotas:
    return Quotas(
        [Quota(CHAT_TURNS, "chat turns", settings.chat_turns_per_hour, 3600)],
        redis_url=settings.redis_url,
        prefix=settings.redis_key_prefix + "quota:",
    )
