"""Helpers for tests: mint the X-Internal-Auth header a service expects."""

from __future__ import annotations

from .internal_auth import HEADER, InternalSigner, generate_keypair


class InternalAuthKit:
    """A fresh Ed25519 pair plus a signer, for tests that call a service directly."""

    def __init__(self) -> None:
        self.private_key, self.public_key = generate_keypair()
        self.signer = InternalSigner(self.private_key)

    def headers(
        self,
        audience: str,
        user_id: int = 1,
        email: str = "ada@example.com",
        username: str = "ada",
        is_admin: bool = False,
        request_id: str | None = "test-rid",
    ) -> dict[str, str]:
        token = self.signer.sign(
            audience, user_id=user_id, email=email, username=username, is_admin=is_admin, request_id=request_id
        )
        return {HEADER: token}
