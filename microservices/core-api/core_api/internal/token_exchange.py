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
that is no service at all is a 422; a real one outside the policy is a 403 (the route:
api/routes/internal.py).
"""

from __future__ import annotations

from harvis_common.internal_auth import Identity, InternalSigner

# calling service -> the services it may act at for its user
DELEGATIONS: dict[str, frozenset[str]] = {
    "voice-service": frozenset({"research-service"}),
}


def may_delegate(caller: str, audience: str) -> bool:
    return audience in DELEGATIONS.get(caller, frozenset())


def sign_for(signer: InternalSigner, who: Identity, audience: str) -> str:
    """The same identity (user, admin flag, request id), signed for `audience`."""
    return signer.sign(
        audience,
        user_id=who.user_id,
        email=who.email,
        username=who.username,
        is_admin=who.is_admin,
        request_id=who.request_id,
    )
