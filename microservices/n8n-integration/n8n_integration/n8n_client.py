"""A client for n8n's public REST API (`/api/v1`, header `X-N8N-API-KEY`) and its webhooks.

Workflows: list/get/create/update/delete, activate/deactivate. Executions: list/get,
and finding the one a webhook call started.
Running a workflow goes through what n8n publishes for that: its Webhook trigger
(`POST /webhook/<path>` on an active workflow). Failures raise `N8nError` with the
HTTP status a route should answer: n8n's 4xx stay 4xx (404 stays 404, a rejected
workflow is 422), n8n down or failing is 502 (503 when it can't be reached at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("n8n_integration")

# What the public API accepts on create/update (it rejects any other property).
WORKFLOW_FIELDS = ("name", "nodes", "connections", "settings", "staticData")


def _read_key(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text(encoding="utf-8").strip()
    return ""


def _store_key(path: str, key: str) -> None:
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.touch(mode=0o600)
    file.chmod(0o600)
    file.write_text(key + "\n", encoding="utf-8")


class N8nError(Exception):
    def __init__(self, status: int, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.upstream_status = upstream_status


def _map_status(upstream: int) -> int:
    if upstream in (400, 422):
        return 422
    if upstream == 404:
        return 404
    if upstream == 409:
        return 409
    if upstream in (401, 403):
        return 502  # our API key is wrong: an operator problem, not the user's
    if upstream == 503:
        return 503  # n8n is starting (or, natively, still being installed): its message says which
    return 502


async def _not_ready(resp: aiohttp.ClientResponse) -> N8nError:
    """n8n's 503 (starting, or the native runner's "still being installed: 40%…") with its message."""
    try:
        body = await resp.json(content_type=None)
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
    except (ValueError, aiohttp.ClientError):
        message = ""
    return N8nError(503, message or "n8n is not ready yet", 503)


class N8nClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 15.0,
        api_key_file: str = "",
        owner_email: str = "",
        owner_password: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.api_key_file = api_key_file
        self.owner_email, self.owner_password = owner_email, owner_password
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._key_lock = asyncio.Lock()

    async def _ensure_key(self) -> None:
        """The public-API key, on first need: N8N_API_KEY, else the key file, else provisioned
        from the owner's credentials (then kept in the key file, so a restart reuses it). Lazy,
        because n8n may come up after this service; a failure is retried on the next call."""
        async with self._key_lock:
            if self.api_key:
                return
            if self.api_key_file:
                self.api_key = await asyncio.to_thread(_read_key, self.api_key_file)
            if self.api_key or not self.owner_password:
                return
            try:
                key = await self.bootstrap_api_key(self.owner_email, self.owner_password)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                raise N8nError(503, f"n8n at {self.base_url} is not ready for key provisioning ({exc})") from exc
            log.info("n8n API key provisioned", extra={"owner": self.owner_email})
            if self.api_key_file:
                await asyncio.to_thread(_store_key, self.api_key_file, key)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"Accept": "application/json"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        what: str = "n8n",
    ) -> Any:
        if not self.api_key and path.startswith("/api/"):
            await self._ensure_key()
            if not self.api_key:
                raise N8nError(
                    503, "n8n is not configured: no N8N_API_KEY, no key in N8N_API_KEY_FILE, no N8N_OWNER_PASSWORD"
                )
        url = self.base_url + path
        if body is None and method in ("POST", "PUT"):
            body = {}  # n8n answers 415 to a body-less POST (e.g. activate)
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s, sock_connect=5)
        try:
            headers = {"X-N8N-API-KEY": self.api_key}
            async with self._http().request(
                method, url, json=body, params=params, timeout=timeout, headers=headers
            ) as resp:
                text = await resp.text()
                if resp.status == 404 and not resp.content_type.endswith("json"):
                    # Express's HTML "Cannot POST /api/v1/…": n8n is up but its public API is
                    # not registered yet (it starts serving before it is ready).
                    raise N8nError(503, f"{what}: n8n is starting, try again in a moment", 404)
                if resp.status >= 400:
                    detail = text[:500]
                    try:
                        parsed = json.loads(text)
                        if isinstance(parsed, dict):
                            detail = str(parsed.get("message") or parsed.get("error") or parsed)[:500]
                    except ValueError:
                        pass
                    raise N8nError(
                        _map_status(resp.status), f"{what}: n8n answered {resp.status}: {detail}", resp.status
                    )
                if not text:
                    return None
                try:
                    return json.loads(text)
                except ValueError:
                    # The public API answers JSON only; text is n8n starting (a 200 "n8n is
                    # starting up. Please wait" before its routes are ready).
                    raise N8nError(503, f"{what}: n8n is starting, try again in a moment", resp.status) from None
        except N8nError:
            raise
        except TimeoutError as exc:
            raise N8nError(504, f"{what}: n8n did not answer within {timeout.total:g} s") from exc
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise N8nError(503, f"{what}: n8n at {self.base_url} is not reachable ({exc})") from exc

    # ------------------------------------------------------------ workflows

    async def list_workflows(self, limit: int = 100) -> list[dict[str, Any]]:
        out = await self._call("GET", "/api/v1/workflows", params={"limit": limit}, what="list workflows")
        return out.get("data", []) if isinstance(out, dict) else []

    async def get_workflow(self, workflow_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/workflows/{workflow_id}", what="get workflow")

    async def create_workflow(self, wf: dict[str, Any]) -> dict[str, Any]:
        body = {k: wf[k] for k in WORKFLOW_FIELDS if k in wf}
        body.setdefault("settings", {})
        return await self._call("POST", "/api/v1/workflows", body=body, what="create workflow")

    async def delete_workflow(self, workflow_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/api/v1/workflows/{workflow_id}", what="delete workflow")

    async def activate(self, workflow_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/workflows/{workflow_id}/activate", what="activate workflow")

    async def deactivate(self, workflow_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/workflows/{workflow_id}/deactivate", what="deactivate workflow")

    # ------------------------------------------------------------ executions

    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 20, include_data: bool = False
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "includeData": "true" if include_data else "false"}
        if workflow_id:
            params["workflowId"] = workflow_id
        out = await self._call("GET", "/api/v1/executions", params=params, what="list executions")
        return out.get("data", []) if isinstance(out, dict) else []

    async def get_execution(self, execution_id: str, include_data: bool = True) -> dict[str, Any]:
        params = {"includeData": "true" if include_data else "false"}
        return await self._call("GET", f"/api/v1/executions/{execution_id}", params=params, what="get execution")

    # ------------------------------------------------------------ running

    async def call_webhook(self, path: str, data: Any, timeout_s: float) -> tuple[int, Any]:
        """POST `data` to the production webhook; (status, body). A workflow that fails
        answers 500 from n8n: that is returned, not raised, so the execution can be read.
        A redirect (a Respond to Webhook node can answer with any URL) is returned as it is,
        never followed: following it would fetch the user's URL from inside our network."""
        url = f"{self.base_url}/webhook/{path}"
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=5)
        try:
            async with self._http().post(url, json=data, timeout=timeout, allow_redirects=False) as resp:
                text = await resp.text()
                try:
                    body: Any = json.loads(text) if text else None
                except ValueError:
                    body = text
                if resp.status == 404:
                    raise N8nError(409, f"n8n has no active webhook for this workflow: {str(body)[:300]}", 404)
                return resp.status, body
        except N8nError:
            raise
        except TimeoutError:
            return 0, None  # still running: the caller reports the execution as running
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise N8nError(503, f"run workflow: n8n at {self.base_url} is not reachable ({exc})") from exc

    async def find_execution(self, workflow_id: str, since: float, known: set[str]) -> dict[str, Any] | None:
        """The workflow's latest execution that is not one of `known` and started at `since`
        (a Unix time) or later, 2 s of clock difference allowed; None when there is none yet."""
        for ex in await self.list_executions(workflow_id, limit=10):
            if str(ex.get("id")) in known:
                continue
            started = ex.get("startedAt")
            try:
                ts = datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp()
            except ValueError:
                ts = since
            if ts >= since - 2:
                return ex
        return None

    async def wait_for_execution(
        self, workflow_id: str, since: float, known: set[str], wait_s: float
    ) -> dict[str, Any] | None:
        """`find_execution`, tried every 0.2 s for up to `wait_s`: the execution record appears
        once n8n has saved it (right after the webhook answers)."""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            ex = await self.find_execution(workflow_id, since, known)
            if ex is not None:
                return ex
            await asyncio.sleep(0.2)
        return None

    async def bootstrap_api_key(self, email: str, password: str) -> str:
        """Provision a public-API key without clicks: owner setup (accepted only while n8n has
        no owner), login, `POST /rest/api-keys`. Uses n8n's internal REST API (what its editor
        calls); the key is kept in memory and used from then on."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=5)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout) as http:
            setup = {"email": email, "firstName": "Harvis", "lastName": "Owner", "password": password}
            async with http.post(self.base_url + "/rest/owner/setup", json=setup) as resp:
                if resp.status == 503:
                    raise await _not_ready(resp)
                if resp.status not in (200, 400):
                    raise N8nError(502, f"n8n owner setup answered {resp.status}", resp.status)
            login = {"emailOrLdapLoginId": email, "password": password}
            async with http.post(self.base_url + "/rest/login", json=login) as resp:
                if resp.status != 200:
                    raise N8nError(
                        502, f"n8n login as {email} answered {resp.status}: check N8N_OWNER_PASSWORD", resp.status
                    )
            async with http.get(self.base_url + "/rest/api-keys/scopes") as resp:
                scopes = (await resp.json(content_type=None)).get("data") if resp.status == 200 else None
            body = {
                "label": f"harvis-n8n-integration-{int(time.time())}",
                "expiresAt": None,
                "scopes": scopes
                or [
                    "workflow:create",
                    "workflow:read",
                    "workflow:update",
                    "workflow:delete",
                    "workflow:list",
                    "workflow:activate",
                    "workflow:deactivate",
                    "execution:read",
                    "execution:list",
                ],
            }
            async with http.post(self.base_url + "/rest/api-keys", json=body) as resp:
                out = await resp.json(content_type=None)
                if resp.status != 200:
                    raise N8nError(502, f"n8n refused to create an API key ({resp.status})", resp.status)
        key = (out.get("data") or {}).get("rawApiKey")
        if not key:
            raise N8nError(502, "n8n answered no API key")
        self.api_key = key
        return key

    async def ping(self) -> str:
        await self._call("GET", "/api/v1/workflows", params={"limit": 1}, what="ping")
        return f"n8n at {self.base_url}"
