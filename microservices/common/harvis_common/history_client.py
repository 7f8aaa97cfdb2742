"""Client of core-api's internal history API (`/internal/history/…`).

A service writes into the user's chat history by sending back the `X-Internal-Auth`
token the gateway gave it for the user's request; core-api acts as that token's user.

    history = HistoryClient(settings.core_api_url)
    saved = await history.save_exchange(token, user_message={"content": q}, assistant_message={...})
    saved["session_id"]

Needs `aiohttp` in the service's requirements.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from .internal_auth import HEADER

__all__ = ["HistoryClient", "HistoryError"]


class HistoryError(Exception):
    """The chat history could not be read or written."""


class HistoryClient:
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
            raise HistoryError("no internal token to act for the user")
        try:
            async with self._http().request(
                method, self.base_url + path, headers={HEADER: token}, timeout=self.timeout, **kwargs
            ) as resp:
                if resp.status == 404:
                    return 404, None
                if resp.status >= 400:
                    raise HistoryError(f"chat history answered {resp.status}: {(await resp.text())[:300]}")
                return resp.status, await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HistoryError(f"chat history unreachable: {exc}") from exc

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
            raise HistoryError("chat history did not save the exchange")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
