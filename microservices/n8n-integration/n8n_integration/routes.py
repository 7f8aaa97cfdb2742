"""The /api/n8n/ routes: create, execute, status, optimize (each user sees only their workflows).

Everything that reaches n8n passes `validate_workflow` with the safety rules (safety.py) and,
for literal URLs, the SSRF policy; the per-user limits (limits.py) are taken before n8n is
asked for anything, and given back when n8n fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator

from harvis_common.health import ReadyCheck, run_check
from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.llm import LLMError

from .builder import BuildFailed, build_workflow, rule_suggestions
from .knowledge import workflow_text
from .limits import LimitReached
from .n8n_client import N8nError
from .safety import url_problems
from .validation import WorkflowInvalid, ensure_webhook, validate_workflow

router = APIRouter(prefix="/api/n8n", tags=["n8n"])
Caller = Annotated[Identity, Depends(current_identity)]


class CreateBody(BaseModel):
    workflow: dict[str, Any] | None = None
    prompt: str | None = Field(default=None, min_length=3, max_length=4000)
    name: str | None = Field(default=None, max_length=128)
    activate: bool = True

    @model_validator(mode="after")
    def _one(self) -> CreateBody:
        if (self.workflow is None) == (self.prompt is None):
            raise ValueError("give either 'workflow' (n8n workflow JSON) or 'prompt' (a description)")
        return self


class ExecuteBody(BaseModel):
    workflow_id: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] | list[Any] | None = None
    wait: bool = True


class OptimizeBody(BaseModel):
    workflow_id: str | None = Field(default=None, min_length=1, max_length=64)
    workflow: dict[str, Any] | None = None
    use_llm: bool = True

    @model_validator(mode="after")
    def _one(self) -> OptimizeBody:
        if (self.workflow is None) == (self.workflow_id is None):
            raise ValueError("give either 'workflow_id' or 'workflow'")
        return self


def _state(request: Request) -> Any:
    return request.app.state.n8n


def _n8n_http(exc: N8nError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def _limit_http(exc: LimitReached) -> HTTPException:
    return HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


def _check_stored(st: Any, wf: dict[str, Any]) -> None:
    """A stored workflow is checked again before it runs or activates: one created before
    these rules (or changed in n8n behind our back) must not run."""
    try:
        validate_workflow(
            {k: wf.get(k) for k in ("name", "nodes", "connections", "settings")},
            max_nodes=st.settings.n8n_max_nodes,
        )
    except WorkflowInvalid as exc:
        raise HTTPException(422, f"This workflow is not allowed to run: {exc}") from exc


async def _owned(request: Request, identity: Identity, workflow_id: str) -> Any:
    row = await _state(request).store.get_workflow(identity.user_id, workflow_id)
    if row is None:
        raise HTTPException(404, "Workflow not found")
    return row


def _summary(st: Any, wf: dict[str, Any], row_path: str | None = None) -> dict[str, Any]:
    return {
        "id": str(wf["id"]),
        "name": wf["name"],
        "active": bool(wf.get("active")),
        "url": f"{st.public_url}/workflow/{wf['id']}",
        "nodes": [{"name": n["name"], "type": n["type"]} for n in wf.get("nodes", [])],
        "webhook_path": row_path,
        "created_at": wf.get("createdAt"),
        "updated_at": wf.get("updatedAt"),
    }


@router.get("/health")
async def health(request: Request, _: Caller) -> dict[str, Any]:
    """n8n, the database and the knowledge base, each with its state and latency."""
    deps: dict[str, ReadyCheck] = request.app.state.dependency_checks
    checks = await asyncio.gather(*(run_check(n, c) for n, c in deps.items()))
    return {"status": "ok" if all(c["ok"] for c in checks) else "degraded", "checks": list(checks)}


@router.post("/workflow/create")
async def create(body: CreateBody, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    extra: dict[str, Any] = {}
    if body.workflow is not None:
        raw = dict(body.workflow)
        if body.name:
            raw["name"] = body.name
        try:
            wf = validate_workflow(raw, max_nodes=st.settings.n8n_max_nodes)
        except WorkflowInvalid as exc:
            raise HTTPException(422, f"Invalid n8n workflow: {exc}") from exc
        source = "json"
    else:
        if st.kb is None:
            raise HTTPException(503, "The workflow knowledge base is not available (PostgreSQL with pgvector needed)")
        started = time.perf_counter()
        similar = await st.kb.search(body.prompt, st.settings.n8n_retrieval_k)
        try:
            wf, attempts = await build_workflow(
                st.llm,
                await st.model_name(),
                body.prompt,
                similar,
                repairs=st.settings.n8n_builder_repairs,
                max_nodes=st.settings.n8n_max_nodes,
            )
        except BuildFailed as exc:
            raise HTTPException(422, exc.message) from exc
        except LLMError as exc:
            raise HTTPException(exc.status, str(exc)) from exc
        if body.name:
            wf["name"] = body.name
        source = "prompt"
        extra = {
            "examples": [m.brief() for m in similar],
            "attempts": attempts,
            "build_ms": round((time.perf_counter() - started) * 1000, 1),
        }
    problems = await url_problems(wf, st.policy)
    if problems:
        raise HTTPException(422, "Invalid n8n workflow: " + "; ".join(problems))
    wf, path = ensure_webhook(wf)
    try:
        reservation = await st.limits.reserve_workflow(identity.user_id, wf["name"])
    except LimitReached as exc:
        raise _limit_http(exc) from exc
    if body.activate:
        try:
            await st.limits.reserve_activation(identity.user_id, reservation)
        except LimitReached as exc:
            await st.limits.release_workflow(reservation)
            raise _limit_http(exc) from exc
    try:
        created = await st.n8n.create_workflow(wf)
    except N8nError as exc:
        await st.limits.release_workflow(reservation)
        raise _n8n_http(exc) from exc
    wid = str(created["id"])
    await st.limits.confirm_workflow(reservation, identity.user_id, wid, created["name"], path, source, body.prompt)
    if body.activate:
        try:
            created = await st.n8n.activate(wid)
        except N8nError as exc:
            await _cleanup(st, wid)
            raise HTTPException(exc.status, f"n8n rejected the workflow on activation: {exc.message}") from exc
    return {**_summary(st, created, path), "source": source, **extra}


async def _cleanup(st: Any, wid: str) -> None:
    with contextlib.suppress(N8nError):
        await st.n8n.delete_workflow(wid)
    await st.store.delete_workflow(wid)


@router.get("/workflows")
async def list_workflows(request: Request, identity: Caller) -> dict[str, Any]:
    rows = await _state(request).store.list_workflows(identity.user_id)
    return {"workflows": [dict(r) for r in rows]}


@router.get("/workflows/{workflow_id}")
async def get_workflow(workflow_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    row = await _owned(request, identity, workflow_id)
    try:
        wf = await st.n8n.get_workflow(workflow_id)
    except N8nError as exc:
        raise _n8n_http(exc) from exc
    return {
        **_summary(st, wf, row["webhook_path"]),
        "workflow": {k: wf.get(k) for k in ("name", "nodes", "connections", "settings")},
    }


@router.delete("/workflows/{workflow_id}")
async def delete_workflow(workflow_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    await _owned(request, identity, workflow_id)
    try:
        await st.n8n.delete_workflow(workflow_id)
    except N8nError as exc:
        if exc.status != 404:
            raise _n8n_http(exc) from exc
    await st.store.delete_workflow(workflow_id)
    return {"id": workflow_id, "deleted": True}


async def _reserve_activation(st: Any, identity: Identity, workflow_id: str) -> bool:
    try:
        return await st.limits.reserve_activation(identity.user_id, workflow_id)
    except LimitReached as exc:
        raise _limit_http(exc) from exc


@router.post("/workflows/{workflow_id}/activate")
async def activate(workflow_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    row = await _owned(request, identity, workflow_id)
    reserved = await _reserve_activation(st, identity, workflow_id)
    try:
        _check_stored(st, await st.n8n.get_workflow(workflow_id))
        wf = await st.n8n.activate(workflow_id)
    except N8nError as exc:
        if reserved:
            await st.limits.set_inactive(workflow_id)
        raise _n8n_http(exc) from exc
    except HTTPException:
        if reserved:
            await st.limits.set_inactive(workflow_id)
        raise
    return _summary(st, wf, row["webhook_path"])


@router.post("/workflows/{workflow_id}/deactivate")
async def deactivate(workflow_id: str, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    row = await _owned(request, identity, workflow_id)
    try:
        wf = await st.n8n.deactivate(workflow_id)
    except N8nError as exc:
        raise _n8n_http(exc) from exc
    await st.limits.set_inactive(workflow_id)
    return _summary(st, wf, row["webhook_path"])


def _iso(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _execution_view(ex: dict[str, Any]) -> dict[str, Any]:
    status = ex.get("status") or ("success" if ex.get("finished") else "running")
    out: dict[str, Any] = {
        "execution_id": str(ex.get("id")),
        "workflow_id": str(ex.get("workflowId")),
        "status": status,
        "finished": bool(ex.get("finished")),
        "mode": ex.get("mode"),
        "started_at": _iso(ex.get("startedAt")),
        "finished_at": _iso(ex.get("stoppedAt")),
    }
    run = ((ex.get("data") or {}).get("resultData") or {}) if isinstance(ex.get("data"), dict) else {}
    if run:
        last = run.get("lastNodeExecuted")
        runs = (run.get("runData") or {}).get(last) or []
        if runs:
            items = ((runs[-1].get("data") or {}).get("main") or [[]])[0] or []
            out["data"] = [i.get("json") for i in items if isinstance(i, dict)]
        out["last_node"] = last
        err = run.get("error")
        if err:
            out["error"] = err.get("message") if isinstance(err, dict) else str(err)
    return out


async def _find_execution(st: Any, workflow_id: str, since: float, known: set[str]) -> dict[str, Any] | None:
    for ex in await st.n8n.list_executions(workflow_id, limit=10):
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


@router.post("/workflow/execute")
async def execute(body: ExecuteBody, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    row = await _owned(request, identity, body.workflow_id)
    if not row["webhook_path"]:
        raise HTTPException(409, "This workflow has no webhook trigger to run it")
    # Both limits before n8n hears of it: running an inactive workflow activates it.
    reserved = False if row["active"] else await _reserve_activation(st, identity, body.workflow_id)
    try:
        run_id = await st.limits.take_run(identity.user_id, body.workflow_id)
    except LimitReached as exc:
        if reserved:
            await st.limits.set_inactive(body.workflow_id)
        raise _limit_http(exc) from exc
    called = False
    try:
        wf = await st.n8n.get_workflow(body.workflow_id)
        _check_stored(st, wf)
        if not wf.get("active"):
            await st.n8n.activate(body.workflow_id)
        known = {str(e.get("id")) for e in await st.n8n.list_executions(body.workflow_id, limit=10)}
        since = time.time()
        timeout = st.settings.n8n_execution_wait_s if body.wait else 1.0
        status, response = await st.n8n.call_webhook(row["webhook_path"], body.data or {}, timeout)
        called = True
        # The execution record appears once n8n has saved it (right after the webhook answers).
        ex = None
        deadline = time.monotonic() + (5.0 if status else 2.0)
        while ex is None and time.monotonic() < deadline:
            ex = await _find_execution(st, body.workflow_id, since, known)
            if ex is None:
                await asyncio.sleep(0.2)
        if ex is not None:
            full = await st.n8n.get_execution(str(ex["id"]), include_data=True)
    except (N8nError, HTTPException) as exc:
        if not called:  # n8n never ran it: the run and the activation are given back
            await st.limits.refund_run(run_id)
            if reserved:
                await st.limits.set_inactive(body.workflow_id)
        if isinstance(exc, N8nError):
            raise _n8n_http(exc) from exc
        raise
    if ex is None:
        if status == 0:
            return {"execution_id": None, "status": "running", "workflow_id": body.workflow_id}
        return {
            "execution_id": None,
            "status": "success" if status < 400 else "error",
            "workflow_id": body.workflow_id,
            "data": response,
            "http_status": status,
        }
    await st.store.add_execution(str(ex["id"]), body.workflow_id, identity.user_id)
    view = _execution_view(full)
    if status:
        view["response"] = response
        view["http_status"] = status
    return view


@router.get("/workflow/status")
async def status(
    request: Request,
    identity: Caller,
    workflow_id: Annotated[str | None, Query(max_length=64)] = None,
    execution_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    st = _state(request)
    if (workflow_id is None) == (execution_id is None):
        raise HTTPException(422, "give either workflow_id or execution_id")
    try:
        if execution_id is not None:
            if not await st.store.owns_execution(identity.user_id, execution_id):
                raise HTTPException(404, "Execution not found")
            return _execution_view(await st.n8n.get_execution(execution_id, include_data=True))
        row = await _owned(request, identity, workflow_id or "")
        wf = await st.n8n.get_workflow(workflow_id or "")
        recent = await st.n8n.list_executions(workflow_id, limit=5)
    except N8nError as exc:
        raise _n8n_http(exc) from exc
    last = _execution_view(recent[0]) if recent else None
    return {
        "workflow_id": workflow_id,
        "name": wf.get("name"),
        "active": bool(wf.get("active")),
        "status": "active" if wf.get("active") else "inactive",
        "started_at": last["started_at"] if last else None,
        "finished_at": last["finished_at"] if last else None,
        "last_execution": last,
        "executions": [_execution_view(e) for e in recent],
        "webhook_path": row["webhook_path"],
        "created_at": _iso(row["created_at"].isoformat() if row["created_at"] else None),
    }


@router.post("/optimize")
async def optimize(body: OptimizeBody, request: Request, identity: Caller) -> dict[str, Any]:
    st = _state(request)
    if body.workflow_id is not None:
        await _owned(request, identity, body.workflow_id)
        try:
            raw = await st.n8n.get_workflow(body.workflow_id)
        except N8nError as exc:
            raise _n8n_http(exc) from exc
        raw = {k: raw.get(k) for k in ("name", "nodes", "connections", "settings")}
    else:
        raw = body.workflow or {}
    try:
        # Review only (nothing reaches n8n): any known node type may be looked at.
        wf = validate_workflow(raw, max_nodes=st.settings.n8n_max_nodes, safe=False)
    except WorkflowInvalid as exc:
        raise HTTPException(422, f"Invalid n8n workflow: {exc}") from exc
    if st.kb is None:
        raise HTTPException(503, "The workflow knowledge base is not available (PostgreSQL with pgvector needed)")
    similar = await st.kb.search(workflow_text("", wf), st.settings.n8n_retrieval_k)
    suggestions = rule_suggestions(wf, similar)
    out: dict[str, Any] = {
        "workflow_id": body.workflow_id,
        "name": wf["name"],
        "similar": [m.brief() for m in similar],
        "suggestions": suggestions,
        "llm_suggestions": None,
    }
    if body.use_llm:
        try:
            out["llm_suggestions"] = await st.llm_advice(wf, similar)
        except LLMError as exc:
            out["llm_error"] = str(exc)
    out["generated_at"] = datetime.now(UTC).isoformat()
    return out
