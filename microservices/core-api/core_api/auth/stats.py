"""Process-local counters of the auth layer, shown by `/api/auth/stats`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class AuthCounters:
    token_validations: int = 0
    token_cache_hits: int = 0
    token_cache_misses: int = 0
    tokens_invalid: int = 0
    tokens_revoked_rejected: int = 0
    tokens_user_inactive: int = 0  # valid tokens of users disabled or deleted since
    tokens_issued: int = 0
    logins_ok: int = 0
    logins_failed: int = 0
    logins_rate_limited: int = 0
    logins_disabled: int = 0
    signups: int = 0
    signup_conflicts: int = 0
    signups_rate_limited: int = 0
    shed_for_load: int = 0  # logins and signups answered 503: the hashing queue was full
    logouts: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out.pop("started_at")
        return out
