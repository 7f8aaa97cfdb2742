"""FastAPI dependency giving a route the caller's verified identity."""

from __future__ import annotations

from fastapi import HTTPException, Request

from .internal_auth import Identity


def current_identity(request: Request) -> Identity:
    identity = request.scope.get("state", {}).get("identity")
    if identity is None:  # only reachable on an open path, which should not ask for it
        raise HTTPException(401, "Not authenticated")
    return identity
