"""Token exchange: `POST /internal/token {audience}` gives a service a fresh internal
token for *another* service, acting for the same user.

Why: a service holds only the public key and the token the gateway gave it names
that service as its audience, so it cannot call a second service for the user on
its own (voice's mic-chat in research mode asks research-service). core-api, which
holds the private key, re-signs the same identity (user, admin flag, request id)
for the new audience.

What is allowed is a fixed delegation policy, not a setting: a caller may ask only
for the audiences listed for it (least privilege — a compromised research-service
cannot turn a user's token into one for the sandbox or the browser). An audience
that is no service at all is a 422; a real one outside the policy is a 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from harvis_common.internal_auth import InternalSigner

from .callers import AUDIENCES, Caller

router = APIRouter(prefix="/internal", tags=["internal"], include_in_schema=False)

# calling service -> the services it may act at for its user
DELEGATIONS: dict[str, frozenset[str]] = {
    "voice-service": frozenset({"research-service"}),
}


class TokenRequest(BaseModel):
    audience: str = Field(min_length=1, max_length=100)


def may_delegate(caller: str, audience: str) -> bool:
    return audience in DELEGATIONS.get(caller, frozenset())


@router.post("/token")
async def exchange_token(body: TokenRequest, caller: Caller, request: Request) -> dict[str, Any]:
    if body.audience not in AUDIENCES:
        raise HTTPException(422, f"Unknown audience {body.audience!r}: expected one of {', '.join(AUDIENCES)}")
    if not may_delegate(caller.service, body.audience):
        raise HTTPException(403, f"{caller.service} may not act at {body.audience}")
    signer: InternalSigner = request.app.state.internal_signer
    who = caller.identity
    token = signer.sign(
        body.audience,
        user_id=who.user_id,
        email=who.email,
        username=who.username,
        is_admin=who.is_admin,
        request_id=who.request_id,
    )
    return {"token": token, "audience": body.audience, "token_type": "internal", "expires_in": signer.ttl_s}
