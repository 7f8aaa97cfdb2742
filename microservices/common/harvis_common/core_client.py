"""Client of core-api's internal API (`/internal/…`, never exposed through nginx).

A service acts for the user whose request it is serving by sending back the
`X-Internal-Auth` token the gateway gave it for that request; core-api acts as
that token's user. Two things are there:

- the chat history (`/internal/history/…`): write and read the user's sessions;
- token exchange (`/internal/token`): a token for another service, for the same
  user, where core-api's delegation policy allows it (voice → research);
- the audit trail (`/internal/audit`): what the service did for the user (`report_audit`,
  in the background: a request never waits for it).

    core = CoreClient(settings.core_api_url)
    saved = await core.save_exchange(token, user_message={"content": q}, assistant_message={...})
    research_token = await core.delegate(token, "research-service")

Needs `aiohttp` in the service's requirements.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from .internal_auth import HEADER
from .tracing import outbound_headers

__all__ = ["CoreClient", "CoreClientError", "report_audit"]

log = logging.getLogger("harvis.core_client")
_reports: set[asyncio.Task[None]] = set()


class CoreClientError(Exception):
    """core-api's internal API refused or could not be reached."""


class CoreClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=3)
        self._session = session

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, trust_env=False)
        return self._session

    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> tuple[int, Any]:
        if not token:
            raise CoreClientError("no internal token to act for the user")
        try:
            async with self._http().request(
                method, self.base_url + path, headers=outbound_headers({HEADER: token}), timeout=self.timeout, **kwargs
            ) as resp:
                if resp.status == 404:
                    return 404, None
                if resp.status >= 400:
                    raise CoreClientError(f"core-api {path} answered {resp.status}: {(await resp.text())[:300]}")
                return resp.status, await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise CoreClientError(f"core-api unreachable: {exc}") from exc

    async def recent(self, token: str, session_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Earlier user/assistant messages of `session_id`, oldest first; [] for an unknown one."""
        status, body = await self._call(
            "GET", f"/internal/history/sessions/{session_id}/messages", token, params={"limit": str(limit)}
        )
        if status == 404 or not isinstance(body, dict):
            return []
        return [m for m in body.get("messages") or [] if m.get("role") in ("user", "assistant")]

    async def save_exchange(
        self,
        token: str,
        *,
        user_message: dict[str, Any],
        assistant_message: dict[str, Any] | None = None,
        session_id: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Saves a user message and (optionally) the answer in one transaction; a new session is
        made when `session_id` is missing or not the user's. Returns core-api's answer
        (`session_id`, `session`, `user_message_id`, `message_id`, `messages`)."""
        body: dict[str, Any] = {"session_id": session_id, "user_message": user_message}
        if assistant_message is not None:
            body["assistant_message"] = assistant_message
        if title:
            body["title"] = title
        status, data = await self._call("POST", "/internal/history/exchange", token, json=body)
        if status == 404 or not isinstance(data, dict):
            raise CoreClientError("chat history did not save the exchange")
        return data

    async def delegate(self, token: str, audience: str) -> str:
        """A fresh internal token for `audience` (another service), for the same user."""
        _, data = await self._call("POST", "/internal/token", token, json={"audience": audience})
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise CoreClientError("core-api gave no token")
        return data["token"]

    async def audit(self, token: str, action: str, target: str | None, outcome: str) -> None:
        """Report to core-api's audit trail what this service did for the token's user."""
        await self._call(
            "POST", "/internal/audit", token, json={"action": action, "target": target, "outcome": outcome}
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def report_audit(base_url: str, token: str | None, action: str, target: str | None, outcome: object) -> None:
    """`CoreClient.audit` in the background (call it while serving the user's request, with that
    request's X-Internal-Auth): nothing waits for it, a failure is logged. For acts that are
    not per-request hot paths (a sandbox run, a workflow execution)."""
    if not token:
        return

    async def send() -> None:
        client = CoreClient(base_url, timeout_s=5.0)
        try:
            await client.audit(token, action, target[:200] if target else None, str(outcome)[:40])
        except CoreClientError as exc:
            log.warning("audit report failed", extra={"action": action, "reason": str(exc)[:200]})
        finally:
            await client.close()

    task = asyncio.get_running_loop().create_task(send())
    _reports.add(task)
    task.add_done_callback(_reports.discard)
