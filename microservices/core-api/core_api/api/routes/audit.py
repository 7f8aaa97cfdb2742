"""`GET /api/admin/audit`: administrators read the audit trail (core_api/audit.py): which
service acted for which user, what it did, on what, how it went, under which request id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ...audit import AuditLog
from ...query_bounds import MAX_BIGINT
from ..deps import Admin

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/audit", responses={401: {}, 403: {}})
async def audit_events(
    _: Admin,
    request: Request,
    user: Annotated[int | None, Query(ge=1, le=MAX_BIGINT, description="only this user's events")] = None,
    service: Annotated[str | None, Query(max_length=64, description="only this service's events")] = None,
    action: Annotated[str | None, Query(max_length=64, description="only this action")] = None,
    since: Annotated[datetime | None, Query(description="only events at or after this time (ISO 8601)")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT, description="events older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    audit: AuditLog = request.app.state.audit
    events = await audit.query(
        user_id=user, service=service, action=action, since=since, before_id=before_id, limit=limit
    )
    return {
        "events": events,
        "limit": limit,
        "next_before_id": events[-1]["id"] if len(events) == limit else None,
        "retention_days": audit.retention_days,
    }
