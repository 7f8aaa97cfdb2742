"""What the routes depend on: the caller, the service's state on app.state, the caller's
workflow a request names (anyone else's is a 404), n8n's and the limits' errors as HTTP,
the per-user limits taken before n8n is asked, and the check a stored workflow passes
again before it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request

from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity

from ..knowledge import KnowledgeBase
from ..limits import LimitReached
from ..n8n_client import N8nError
from ..state import State
from ..validation import WorkflowInvalid, validate_workflow
from ..views import workflow_definition

Caller = Annotated[Identity, Depends(current_identity)]


def n8n_state(request: Request) -> State:
    return request.app.state.n8n


N8n = Annotated[State, Depends(n8n_state)]


def n8n_http(exc: N8nError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


@contextmanager
def n8n_errors() -> Iterator[None]:
    """n8n's failures answer with the status N8nError carries (never a 500)."""
    try:
        yield
    except N8nError as exc:
        raise n8n_http(exc) from exc


def limit_http(exc: LimitReached) -> HTTPException:
    return HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after_s)})


async def owned(st: State, identity: Identity, workflow_id: str) -> asyncpg.Record:
    row = await st.store.get_workflow(identity.user_id, workflow_id)
    if row is None:
        raise HTTPException(404, "Workflow not found")
    return row


async def owned_workflow(workflow_id: str, identity: Caller, st: N8n) -> asyncpg.Record:
    """The ownership record of the path's workflow, if it is the caller's."""
    return await owned(st, identity, workflow_id)


OwnedWorkflow = Annotated[asyncpg.Record, Depends(owned_workflow)]


def knowledge_base(st: State) -> KnowledgeBase:
    if st.kb is None:
        raise HTTPException(503, "The workflow knowledge base is not available (PostgreSQL with pgvector needed)")
    return st.kb


def check_stored(st: State, wf: dict[str, Any]) -> None:
    """A stored workflow is checked again before it runs or activates: one created before
    these rules (or changed in n8n behind our back) must not run."""
    try:
        validate_workflow(workflow_definition(wf), max_nodes=st.settings.n8n_max_nodes)
    except WorkflowInvalid as exc:
        raise HTTPException(422, f"This workflow is not allowed to run: {exc}") from exc


async def reserve_workflow(st: State, identity: Identity, name: str, *, activate: bool) -> str:
    """A place for one more workflow (and one more active one when it is to be activated), or
    the 429: returns the reservation, to confirm or release."""
    try:
        reservation = await st.limits.reserve_workflow(identity.user_id, name)
    except LimitReached as exc:
        raise limit_http(exc) from exc
    if activate:
        try:
            await st.limits.reserve_activation(identity.user_id, reservation)
        except LimitReached as exc:
            await st.limits.release_workflow(reservation)
            raise limit_http(exc) from exc
    return reservation


async def reserve_activation(st: State, identity: Identity, workflow_id: str) -> bool:
    """Count the workflow as active, or the 429; False when it already was (nothing taken)."""
    try:
        return await st.limits.reserve_activation(identity.user_id, workflow_id)
    except LimitReached as exc:
        raise limit_http(exc) from exc
