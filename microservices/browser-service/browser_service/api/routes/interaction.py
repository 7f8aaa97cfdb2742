"""POST /api/browser/interact: one action (click, type, press, scroll, select, wait,
extract, back, forward, evaluate) in a session's page."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from ... import pages
from ...browser import Browser
from ..deps import Caller, Manager
from ..schemas import InteractIn

router = APIRouter()


@router.post("/api/browser/interact")
async def interact(body: InteractIn, identity: Caller, mgr: Manager) -> dict[str, Any]:
    settings = mgr.settings
    session = mgr.get(body.session_id, identity.user_id)
    wait = pages.wait_budget(settings, body.timeout_s)
    a = body.action
    if a in ("click", "type", "select") and not body.selector:
        raise HTTPException(422, f"action {a!r} needs a `selector`")
    if a == "type" and body.text is None:
        raise HTTPException(422, "action 'type' needs `text`")
    if a == "press" and not (body.key or body.text):
        raise HTTPException(422, "action 'press' needs `key` (e.g. 'Enter')")
    if a == "evaluate":
        if not settings.browser_allow_eval:
            raise HTTPException(403, "The evaluate action is disabled on this server (BROWSER_ALLOW_EVAL)")
        if not body.script:
            raise HTTPException(422, "action 'evaluate' needs `script`")

    def act(b: Browser) -> dict[str, Any]:
        result: Any = None
        if a == "click":
            result = b.click(body.selector, body.by, wait)
        elif a == "type":
            b.type(body.selector, body.by, body.text, body.clear, wait)
        elif a == "press":
            b.press(body.key or body.text or "", body.selector, body.by, wait)
        elif a == "scroll":
            result = b.scroll(body.selector, body.by, body.x, body.y, body.to, wait)
        elif a == "select":
            result = b.select(body.selector, body.by, body.value, body.label, body.index, wait)
        elif a == "wait":
            result = b.wait(body.selector, body.by, body.text, body.visible, wait)
        elif a == "extract":
            result = b.extract(body.what, body.selector, body.by, settings.browser_max_extract_chars, wait)
        elif a == "back":
            b.back()
        elif a == "forward":
            b.forward()
        elif a == "evaluate":
            result = b.evaluate(body.script or "")
        return {**b.state(), "result": result}

    since = time.monotonic()
    state = await mgr.run(session, act, pages.hard_timeout(settings, wait))
    await pages.check_landing(mgr, session, since, state)
    pages.remember(session, state)
    return {
        "session_id": session.id,
        "ok": True,
        "url": state["url"],
        "title": state["title"],
        "result": state["result"],
    }
