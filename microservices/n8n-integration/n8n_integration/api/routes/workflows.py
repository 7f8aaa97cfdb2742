"""The caller's workflows: create (from n8n JSON or from a sentence), list, read, delete,
activate, deactivate."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException

from harvis_common.llm import LLMError

from ...builder import BuildFailed, build_workflow
from ...n8n_client import N8nError
from ...safety import url_problems
from ...validation import WorkflowInvalid, ensure_webhook, validate_workflow
from ...views import workflow_definition, workflow_summary
from ..deps import (
    Caller,
    N8n,
    OwnedWorkflow,
    check_stored,
    knowledge_base,
    n8n_errors,
    n8n_http,
    reserve_activation,
    reserve_workflow,
)
from ..schemas import CreateBody

router = APIRouter(prefix="/api/n8n", tags=["n8n"])


@router.post("/workflow/create")
async def create(body: CreateBody, identity: Caller, st: N8n) -> dict[str, Any]:
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
        kb = knowledge_base(st)
        started = time.perf_counter()
        similar = await kb.search(body.prompt, st.settings.n8n_retrieval_k)
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
    reservation = await reserve_workflow(st, identity, wf["name"], activate=body.activate)
    try:
        created = await st.n8n.create_workflow(wf)
    except N8nError as exc:
        await st.limits.release_workflow(reservation)
        raise n8n_http(exc) from exc
    wid = str(created["id"])
    await st.limits.confirm_workflow(reservation, identity.user_id, wid, created["name"], path, source, body.prompt)
    if body.activate:
        try:
            created = await st.n8n.activate(wid)
        except N8nError as exc:
            await st.discard_workflow(wid)
            raise HTTPException(exc.status, f"n8n rejected the workflow on activation: {exc.message}") from exc
    return {**workflow_summary(st.public_url, created, path), "source": source, **extra}


@router.get("/workflows")
async def list_workflows(identity: Caller, st: N8n) -> dict[str, Any]:
    rows = await st.store.list_workflows(identity.user_id)
    return {"workflows": [dict(r) for r in rows]}


@router.get("/workflows/{workflow_id}")
async def get_workflow(workflow_id: str, row: OwnedWorkflow, st: N8n) -> dict[str, Any]:
    with n8n_errors():
        wf = await st.n8n.get_workflow(workflow_id)
    return {**workflow_summary(st.public_url, wf, row["webhook_path"]), "workflow": workflow_definition(wf)}


@router.delete("/workflows/{workflow_id}")
async def delete_workflow(workflow_id: str, _: OwnedWorkflow, st: N8n) -> dict[str, Any]:
    try:
        await st.n8n.delete_workflow(workflow_id)
    except N8nError as exc:
        if exc.status != 404:
            raise n8n_http(exc) from exc
    await st.store.delete_workflow(workflow_id)
    return {"id": workflow_id, "deleted": True}


@router.post("/workflows/{workflow_id}/activate")
async def activate(workflow_id: str, identity: Caller, row: OwnedWorkflow, st: N8n) -> dict[str, Any]:
    reserved = await reserve_activation(st, identity, workflow_id)
    try:
        check_stored(st, await st.n8n.get_workflow(workflow_id))
        wf = await st.n8n.activate(workflow_id)
    except N8nError as exc:
        if reserved:
            await st.limits.set_inactive(workflow_id)
        raise n8n_http(exc) from exc
    except HTTPException:
        if reserved:
            await st.limits.set_inactive(workflow_id)
        raise
    return workflow_summary(st.public_url, wf, row["webhook_path"])


@router.post("/workflows/{workflow_id}/deactivate")
async def deactivate(workflow_id: str, row: OwnedWorkflow, st: N8n) -> dict[str, Any]:
    with n8n_errors():
        wf = await st.n8n.deactivate(workflow_id)
    await st.limits.set_inactive(workflow_id)
    return workflow_summary(st.public_url, wf, row["webhook_path"])
