"""ASGI types and the access line the gateway writes once per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNAUTHORIZED = "Could not validate credentials"

access_log = logging.getLogger("harvis.access")


def log_access(scope: Scope, status: int, start: float, user_id: int | None, upstream: str | None) -> None:
    """One line per request: method, path, status, duration_ms, user_id, upstream
    (the request id comes from `request_id_var`, bound for the whole request)."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "request",
            extra={
                "method": scope.get("method", "WS"),
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                "user_id": user_id,
                "upstream": upstream,
            },
        )
