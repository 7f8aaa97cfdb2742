"""core-api's internal API (`/internal/…`, outside `/api/`: nginx never forwards it and the
gateway does not proxy it). A service sends back the user's forwarded `X-Internal-Auth`
(`internal/callers.py`) and acts as that token's user here.

- The history: other services (voice's mic-chat, research-chat) write into the same chat
  history as `/api/chat`, and read a session back. A service can only touch sessions of the
  user whose request it is serving (others' session ids are 404).
- Token exchange (`POST /internal/token`): a token for another service, for the same user,
  where the delegation policy (`internal/token_exchange.py`) allows it.
- The audit trail (`POST /internal/audit`): a service reports what it did for the user (a
  sandbox run, an n8n execution); recorded under the calling service's name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from harvis_common.internal_auth import InternalSigner

from ...audit import INTERNAL_ACTIONS
from ...internal.callers import AUDIENCES
from ...internal.token_exchange import may_delegate, sign_for
from ...store.chat import title_from
from ..deps import Internal, InternalUser, Store
from ..schemas import AuditReport, ExchangeIn, TokenRequest

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)


@router.post("/history/exchange")
async def save_exchange(body: ExchangeIn, caller: InternalUser, store: Store) -> dict[str, Any]:
    """A user message and (optionally) the answer, in one transaction. With no
    `session_id`, or one that is not this user's, a new session is created."""
    messages = [body.user_message.as_new("user")]
    if body.assistant_message is not None:
        messages.append(body.assistant_message.as_new("assistant"))
    model = body.assistant_message.model_used if body.assistant_message else body.user_message.model_used
    session, saved = await store.add_messages(  # type: ignore[misc]
        caller.user_id,
        body.session_id,
        messages,
        create_title=body.title or title_from(body.user_message.content),
        model_used=model,
    )
    return {
        "session_id": session["id"],
        "session": session,
        "user_message_id": saved[0]["id"],
        "message_id": saved[-1]["id"],
        "messages": saved,
    }


@router.get("/history/sessions/{session_id}/messages")
async def recent_messages(
    session_id: str, caller: InternalUser, store: Store, limit: Annotated[int, Query(ge=1, le=500)] = 40
) -> dict[str, Any]:
    if await store.get_session(caller.user_id, session_id) is None:
        raise HTTPException(404, "Chat session not found")
    return {"session_id": session_id, "messages": await store.recent_messages(caller.user_id, session_id, limit)}


@router.post("/token")
async def exchange_token(body: TokenRequest, caller: Internal, request: Request) -> dict[str, Any]:
    request.state.audit_target = body.audience[:64]  # the audit trail's target (core_api/audit.py)
    if body.audience not in AUDIENCES:
        raise HTTPException(422, f"Unknown audience {body.audience!r}: expected one of {', '.join(AUDIENCES)}")
    if not may_delegate(caller.service, body.audience):
        raise HTTPException(403, f"{caller.service} may not act at {body.audience}")
    signer: InternalSigner = request.app.state.internal_signer
    token = sign_for(signer, caller.identity, body.audience)
    return {"token": token, "audience": body.audience, "token_type": "internal", "expires_in": signer.ttl_s}


# Actions only core-api records itself (the gateway's, the internal API's): a service cannot report them.
RESERVED_ACTIONS = frozenset({"request", "websocket", *INTERNAL_ACTIONS.values()})


@router.post("/audit", status_code=202)
async def report_audit(body: AuditReport, caller: Internal, request: Request) -> dict[str, Any]:
    if body.action in RESERVED_ACTIONS:
        raise HTTPException(422, f"{body.action!r} is recorded by core-api itself")
    audit = getattr(request.app.state, "audit", None)
    if audit is not None:
        identity = caller.identity
        audit.record(identity.user_id, caller.service, body.action, body.target, body.outcome, identity.request_id)
    return {"recorded": audit is not None}
