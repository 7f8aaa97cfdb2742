"""Running the caller's workflows (through their webhook) and reading how they ran."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from harvis_common.core_client import report_audit
from harvis_common.internal_auth import HEADER

from ...limits import LimitReached
from ...metrics import count_execution
from ...n8n_client import N8nError
from ...views import execution_view, unrecorded_run, workflow_status
from ..deps import Caller, N8n, check_stored, limit_http, n8n_errors, n8n_http, owned, reserve_activation
from ..schemas import ExecuteBody

router = APIRouter(prefix="/api/n8n", tags=["n8n"])


def audit_execution(st: Any, request: Request, workflow_id: str, status: str) -> None:
    """core-api's audit trail: a run of the user's workflow (never its input or output)."""
    report_audit(
        st.settings.core_api_url, request.headers.get(HEADER), "n8n_execution", f"workflow {workflow_id}", status
    )


@router.post("/workflow/execute")
async def execute(body: ExecuteBody, identity: Caller, st: N8n, request: Request) -> dict[str, Any]:
    row = await owned(st, identity, body.workflow_id)
    if not row["webhook_path"]:
        raise HTTPException(409, "This workflow has no webhook trigger to run it")
    # Both limits before n8n hears of it: running an inactive workflow activates it.
    reserved = False if row["active"] else await reserve_activation(st, identity, body.workflow_id)
    try:
        run_id = await st.limits.take_run(identity.user_id, body.workflow_id)
    except LimitReached as exc:
        if reserved:
            await st.limits.set_inactive(body.workflow_id)
        raise limit_http(exc) from exc
    called = False
    try:
        wf = await st.n8n.get_workflow(body.workflow_id)
        check_stored(st, wf)
        if not wf.get("active"):
            await st.n8n.activate(body.workflow_id)
        known = {str(e.get("id")) for e in await st.n8n.list_executions(body.workflow_id, limit=10)}
        since = time.time()
        timeout = st.settings.n8n_execution_wait_s if body.wait else 1.0
        status, response = await st.n8n.call_webhook(row["webhook_path"], body.data or {}, timeout)
        called = True
        ex = await st.n8n.wait_for_execution(body.workflow_id, since, known, 5.0 if status else 2.0)
        if ex is not None:
            full = await st.n8n.get_execution(str(ex["id"]), include_data=True)
    except (N8nError, HTTPException) as exc:
        count_execution("failed")
        audit_execution(st, request, body.workflow_id, "failed")
        if not called:  # n8n never ran it: the run and the activation are given back
            await st.limits.refund_run(run_id)
            if reserved:
                await st.limits.set_inactive(body.workflow_id)
        if isinstance(exc, N8nError):
            raise n8n_http(exc) from exc
        raise
    if ex is None:
        count_execution("unrecorded")
        audit_execution(st, request, body.workflow_id, "unrecorded")
        return unrecorded_run(body.workflow_id, status, response)
    await st.store.add_execution(str(ex["id"]), body.workflow_id, identity.user_id)
    view = execution_view(full)
    count_execution(view.get("status"))
    audit_execution(st, request, body.workflow_id, view.get("status") or "unknown")
    if status:
        view["response"] = response
        view["http_status"] = status
    return view


@router.get("/workflow/status")
async def status(
    identity: Caller,
    st: N8n,
    workflow_id: Annotated[str | None, Query(max_length=64)] = None,
    execution_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    if (workflow_id is None) == (execution_id is None):
        raise HTTPException(422, "give either workflow_id or execution_id")
    with n8n_errors():
        if execution_id is not None:
            if not await st.store.owns_execution(identity.user_id, execution_id):
                raise HTTPException(404, "Execution not found")
            return execution_view(await st.n8n.get_execution(execution_id, include_data=True))
        row = await owned(st, identity, workflow_id or "")
        wf = await st.n8n.get_workflow(workflow_id or "")
        recent = await st.n8n.list_executions(workflow_id, limit=5)
    return workflow_status(workflow_id, wf, recent, row)
