"""POST /api/browser/navigate: open a URL in a session (a new one without session_id,
a fresh browser in a crashed one)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from ... import pages
from ...browser import Browser
from ..deps import Caller, Manager
from ..schemas import NavigateIn

router = APIRouter()


@router.post("/api/browser/navigate")
async def navigate(body: NavigateIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = mgr.settings
    await pages.vet(body.url, mgr)
    recreated = False
    if body.session_id:
        session = mgr.get(body.session_id, identity.user_id)
        if session.state == "crashed":
            await mgr.relaunch(session)
            recreated = True
        if body.idle_timeout_s:
            session.idle_timeout_s = min(body.idle_timeout_s, settings.browser_idle_timeout_s)
    else:
        session = await mgr.create(identity.user_id, body.idle_timeout_s)
    # How long to wait for "load" (and wait_for_*) after DOMContentLoaded, which the page load
    # timeout already bounds.
    wait = pages.wait_budget(settings, body.timeout_s, 10.0)

    def go(b: Browser) -> dict[str, Any]:
        b.navigate(body.url, body.wait_until, wait)
        if body.wait_for_selector:
            b.find(body.wait_for_selector, body.by, wait, "visible")
        if body.wait_for_text:
            b.wait(None, None, body.wait_for_text, False, wait)
        return {**b.state(), "status": b.nav_status()}

    since = time.monotonic()
    state = await mgr.run(session, go, pages.hard_timeout(settings, wait))
    blocked = await pages.check_landing(mgr, session, since, state)
    pages.remember(session, state)
    return {
        "session_id": session.id,
        "url": state["url"],
        "title": state["title"],
        "status": state["status"],
        "blocked_requests": blocked,
        "recreated": recreated,
    }
