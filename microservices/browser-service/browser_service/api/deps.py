"""What the routes depend on: the caller and the session store on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity

from ..store import SessionManager

Caller = Annotated[Identity, Depends(current_identity)]


def manager(request: Request) -> SessionManager:
    return request.app.state.sessions


Manager = Annotated[SessionManager, Depends(manager)]
