"""Reviewing a workflow (the caller's, or JSON sent along): the closest stored examples,
rule-based suggestions and, if asked, the LLM's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException

from harvis_common.llm import LLMError

from ...builder import review, rule_suggestions
from ...knowledge import workflow_text
from ...validation import WorkflowInvalid, validate_workflow
from ...views import workflow_definition
from ..deps import Caller, N8n, knowledge_base, n8n_errors, owned
from ..schemas import OptimizeBody

router = APIRouter(prefix="/api/n8n", tags=["n8n"])


@router.post("/optimize")
async def optimize(body: OptimizeBody, identity: Caller, st: N8n) -> dict[str, Any]:
    if body.workflow_id is not None:
        await owned(st, identity, body.workflow_id)
        with n8n_errors():
            raw = workflow_definition(await st.n8n.get_workflow(body.workflow_id))
    else:
        raw = body.workflow or {}
    try:
        # Review only (nothing reaches n8n): any known node type may be looked at.
        wf = validate_workflow(raw, max_nodes=st.settings.n8n_max_nodes, safe=False)
    except WorkflowInvalid as exc:
        raise HTTPException(422, f"Invalid n8n workflow: {exc}") from exc
    kb = knowledge_base(st)
    similar = await kb.search(workflow_text("", wf), st.settings.n8n_retrieval_k)
    out: dict[str, Any] = {
        "workflow_id": body.workflow_id,
        "name": wf["name"],
        "similar": [m.brief() for m in similar],
        "suggestions": rule_suggestions(wf, similar),
        "llm_suggestions": None,
    }
    if body.use_llm:
        try:
            out["llm_suggestions"] = await review(st.llm, await st.model_name(), wf, similar)
        except LLMError as exc:
            out["llm_error"] = str(exc)
    out["generated_at"] = datetime.now(UTC).isoformat()
    return out
