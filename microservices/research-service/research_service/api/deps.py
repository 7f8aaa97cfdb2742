"""What the routes depend on: the caller, the objects the lifespan put on app.state, the
research quota and the mapping of model errors to HTTP.

Research turns per user per hour (`RESEARCH_TURNS_PER_HOUR`): every route here searches
the web (a paid API such as Tavily, or someone's SearXNG), fetches pages and most run the
model, so they share one quota — a comparison costs one turn per topic it researches.

Knowledge-base ingestions per user per hour (`RAG_INGESTS_PER_HOUR`): each upload and each
ingestion job (update or rebuild) counts one — they extract, embed and fetch.

The machinery is the fleet's (`harvis_common.quotas`): a rolling window, checked and counted
in one atomic step — in Redis when REDIS_URL is set (keys under RESEARCH_REDIS_PREFIX +
"quota:", shared by every replica), else in this process."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.types import Message

from harvis_common.core_client import CoreClient
from harvis_common.identity import current_identity
from harvis_common.internal_auth import Identity
from harvis_common.llm import LLMError
from harvis_common.quotas import Quota, Quotas, charge

from ..knowledge.base import KnowledgeBase
from ..knowledge.catalogue import SOURCES, UPLOAD
from ..knowledge.state import KnowledgeState
from ..research import Researcher
from ..settings import Settings
from ..store.jobs import job_view

log = logging.getLogger("research.routes")

Caller = Annotated[Identity, Depends(current_identity)]

RESEARCH_TURNS = "research"
KB_INGESTS = "kb_ingest"


def research_quotas(settings: Settings) -> Quotas:
    return Quotas.for_service(
        [
            Quota(RESEARCH_TURNS, "research turns", settings.research_turns_per_hour, 3600),
            Quota(KB_INGESTS, "knowledge-base uploads and ingestion jobs", settings.rag_ingests_per_hour, 3600),
        ],
        redis_url=settings.redis_url,
        service_prefix=settings.research_redis_prefix,
    )


async def charge_turns(request: Request, identity: Identity, turns: int = 1) -> None:
    """Count the caller's turns, or raise the 429 (Retry-After, JSON detail/message)."""
    await charge(request.app.state.quotas, identity.user_id, RESEARCH_TURNS, turns)


async def charge_ingest(request: Request, identity: Identity) -> None:
    """Count an upload or an ingestion job, or raise the 429."""
    await charge(request.app.state.quotas, identity.user_id, KB_INGESTS)


def knowledge_of(request: Request) -> KnowledgeState:
    return request.app.state.knowledge


def kb_of(request: Request) -> KnowledgeBase:
    """The knowledge base, or a 503 saying why there is none (no pgvector database)."""
    kb = knowledge_of(request).kb
    if kb is None:
        raise HTTPException(503, f"The knowledge base is not available: {knowledge_of(request).error}")
    return kb


KB = Annotated[KnowledgeBase, Depends(kb_of)]


def knowledge_search(request: Request, identity: Identity) -> Any:
    """A research-chat turn's search of the caller's knowledge base: its relevant hits, or
    none and why (no knowledge base here, or it failed: the turn goes on without it)."""
    state = knowledge_of(request)
    limit = settings_of(request).research_max_chunks

    async def search(question: str) -> tuple[list[Any], str | None]:
        if state.kb is None:
            return [], f"The knowledge base is not available: {state.error}"
        try:
            return await state.kb.relevant(question, identity.user_id, limit), None
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            log.warning("knowledge-base search failed", extra={"error": str(exc)})
            return [], "The knowledge base could not be searched"

    return search


def owner_for(source: str, identity: Identity) -> int | None:
    """Whose documents of `source` a request may clear or rebuild: the caller's own uploads, or
    a shared source's — which only an administrator may (they are every user's)."""
    if source not in SOURCES:
        raise HTTPException(404, f"No source {source!r}")
    if SOURCES[source].kind == UPLOAD:
        return identity.user_id
    if not identity.is_admin:
        raise HTTPException(403, f"Only an administrator can clear or rebuild the shared source {source!r}")
    return None


MAX_OPEN_JOBS = 3  # pending or running, per user
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file


async def start_job(
    kb: KnowledgeBase, request: Request, identity: Identity, kind: str, sources: list[str], params: dict[str, Any]
) -> dict[str, Any]:
    """Queue an ingestion job for the caller (a few open at most, one ingestion of their
    quota) and wake this process's worker: `{job_id, ...}`."""
    if await kb.jobs.open_count(identity.user_id) >= MAX_OPEN_JOBS:
        raise HTTPException(429, f"You have {MAX_OPEN_JOBS} ingestion jobs pending or running: wait for one to end")
    await charge_ingest(request, identity)
    row = await kb.jobs.create(identity.user_id, kind, sources, params)
    worker = knowledge_of(request).worker
    if worker is not None:
        worker.wake()
    return {"job_id": str(row["id"]), "id": str(row["id"]), "status": row["status"], "job": job_view(row)}


async def read_upload(request: Request, max_bytes: int) -> tuple[str, bytes]:
    """The multipart field `file` (its name and bytes), reading no more than `max_bytes` of it:
    a larger body is refused with 413 as it arrives (by its Content-Length when it says, else
    by what was received), not after it was spooled to disk. Starlette's temporary file is
    closed (removed) when the form is."""
    too_large = HTTPException(413, f"The file is larger than {max_bytes:,} bytes")
    limit = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    bounded = Request(request.scope, receive)
    try:
        async with bounded.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "Send the document as multipart/form-data, in the field `file`")
            data = await upload.read(max_bytes + 1)
            name = upload.filename or ""
    except ValueError as exc:  # starlette's MultiPartException and malformed bodies
        raise HTTPException(400, f"Not a readable multipart body: {exc}") from exc
    if len(data) > max_bytes:
        raise too_large
    return name, data


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def researcher_of(request: Request) -> Researcher:
    return request.app.state.researcher


def history_of(request: Request) -> CoreClient:
    return request.app.state.history


def llm_error(exc: LLMError) -> HTTPException:
    return HTTPException(exc.status, exc.message)
