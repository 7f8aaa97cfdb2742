"""REST view of the registry: `GET /api/mcp/tools`, `POST /api/mcp/tool`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from harvis_common.quotas import QUOTA_RESPONSES, QuotaExceeded

from ...registry import DisabledTool, UnknownTool
from ..deps import Caller, Context, ToolRegistry
from ..schemas import ToolCall

router = APIRouter(prefix="/api/mcp", tags=["mcp"])


@router.get("/tools")
async def list_tools(identity: Caller, registry: ToolRegistry) -> dict[str, Any]:
    return {"tools": registry.listing()}


@router.post(
    "/tool",
    responses=QUOTA_RESPONSES,
)
async def call_tool(body: ToolCall, ctx: Context, registry: ToolRegistry) -> dict[str, Any]:
    try:
        outcome = await registry.call(body.name, body.arguments, ctx)
    except UnknownTool as exc:
        raise HTTPException(404, str(exc)) from None
    except DisabledTool as exc:
        raise HTTPException(403, str(exc)) from None
    except QuotaExceeded as exc:
        raise exc.http() from None
    return outcome.as_dict()
