"""What callers see of n8n's records: a workflow's summary and status, an execution's
result (the last node's items, the error), with n8n's camelCase turned into ours."""

from __future__ import annotations

from typing import Any

# The parts of an n8n workflow that define it: what is validated, reviewed and shown back.
DEFINITION_FIELDS = ("name", "nodes", "connections", "settings")


def workflow_definition(wf: dict[str, Any]) -> dict[str, Any]:
    return {k: wf.get(k) for k in DEFINITION_FIELDS}


def iso(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def workflow_summary(public_url: str, wf: dict[str, Any], webhook_path: str | None = None) -> dict[str, Any]:
    return {
        "id": str(wf["id"]),
        "name": wf["name"],
        "active": bool(wf.get("active")),
        "url": f"{public_url}/workflow/{wf['id']}",
        "nodes": [{"name": n["name"], "type": n["type"]} for n in wf.get("nodes", [])],
        "webhook_path": webhook_path,
        "created_at": wf.get("createdAt"),
        "updated_at": wf.get("updatedAt"),
    }


def execution_view(ex: dict[str, Any]) -> dict[str, Any]:
    status = ex.get("status") or ("success" if ex.get("finished") else "running")
    out: dict[str, Any] = {
        "execution_id": str(ex.get("id")),
        "workflow_id": str(ex.get("workflowId")),
        "status": status,
        "finished": bool(ex.get("finished")),
        "mode": ex.get("mode"),
        "started_at": iso(ex.get("startedAt")),
        "finished_at": iso(ex.get("stoppedAt")),
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


def unrecorded_run(workflow_id: str, status: int, response: Any) -> dict[str, Any]:
    """A webhook call whose execution n8n has not recorded (yet): still running when the call
    timed out (`status` 0), else what the webhook answered."""
    if status == 0:
        return {"execution_id": None, "status": "running", "workflow_id": workflow_id}
    return {
        "execution_id": None,
        "status": "success" if status < 400 else "error",
        "workflow_id": workflow_id,
        "data": response,
        "http_status": status,
    }


def workflow_status(
    workflow_id: str | None, wf: dict[str, Any], recent: list[dict[str, Any]], row: Any
) -> dict[str, Any]:
    """A workflow's state in n8n, its latest executions (`recent`, newest first) and our record (`row`)."""
    last = execution_view(recent[0]) if recent else None
    return {
        "workflow_id": workflow_id,
        "name": wf.get("name"),
        "active": bool(wf.get("active")),
        "status": "active" if wf.get("active") else "inactive",
        "started_at": last["started_at"] if last else None,
        "finished_at": last["finished_at"] if last else None,
        "last_execution": last,
        "executions": [execution_view(e) for e in recent],
        "webhook_path": row["webhook_path"],
        "created_at": iso(row["created_at"].isoformat() if row["created_at"] else None),
    }
