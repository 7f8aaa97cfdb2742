"""The front end's "RAG corpus" page (docs/contract-knowledge-artifacts.md §1): ingestion jobs
(start, poll, list, cancel), per-source counts, rebuild and clear of a source, the health
badge, and what the knowledge base is made of (config, models).

Jobs run in the background (knowledge/worker.py); a user sees only their own jobs (404 for
others'). Shared sources are shared: any user may add to them with a job, only an
administrator may clear or rebuild one; `uploads` is each user's own.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from harvis_common.quotas import QUOTA_RESPONSES

from ...knowledge.catalogue import LOCAL, SOURCES, UPLOAD
from ...knowledge.local import confined
from ...store.jobs import job_view
from ..deps import KB, Caller, knowledge_of, owner_for, settings_of, start_job
from ..schemas import RebuildRequest, UpdateRequest

router = APIRouter(tags=["knowledge base"])


@router.post("/api/rag/update-local", responses=QUOTA_RESPONSES)
async def update_local(body: UpdateRequest, kb: KB, identity: Caller, request: Request) -> dict[str, Any]:
    """Start an ingestion job for the chosen sources: `{job_id}`, then poll GET /api/rag/jobs/{id}."""
    roots = settings_of(request).local_roots
    outside = [p for p in body.ansible_paths if not p.startswith("/") or confined(p, roots) is None]
    if outside:
        allowed = ", ".join(roots) or "none are configured (RAG_LOCAL_ROOTS)"
        raise HTTPException(422, f"ansible_paths {outside} are not under the allowed directories ({allowed})")
    web = [s for s in body.sources if SOURCES[s].kind not in (LOCAL, UPLOAD)]
    if body.extra_urls and not web:
        raise HTTPException(422, "extra_urls are read under a web-doc source: choose one too")
    params = body.model_dump(exclude={"sources"})
    return await start_job(kb, request, identity, "update", body.sources, params)


@router.post("/api/rag/rebuild", responses=QUOTA_RESPONSES)
async def rebuild(body: RebuildRequest, kb: KB, identity: Caller, request: Request) -> dict[str, Any]:
    """Read one source again from scratch: every document re-chunked and re-embedded (web pages
    and files read again; a page that can't be fetched keeps its old text)."""
    owner_for(body.source, identity)
    return await start_job(kb, request, identity, "rebuild", [body.source], {})


@router.get("/api/rag/jobs/{job_id}")
async def get_job(job_id: uuid.UUID, kb: KB, identity: Caller) -> dict[str, Any]:
    row = await kb.jobs.get(job_id, identity.user_id)
    if row is None:
        raise HTTPException(404, "No such job")
    return job_view(row)


@router.get("/api/rag/jobs")
async def list_jobs(kb: KB, identity: Caller, limit: int = Query(default=20, ge=1, le=100)) -> dict[str, Any]:
    jobs = [job_view(r) for r in await kb.jobs.of_user(identity.user_id, limit)]
    return {"jobs": jobs, "count": len(jobs)}


@router.post("/api/rag/jobs/{job_id}/cancel")
async def cancel_job(job_id: uuid.UUID, kb: KB, identity: Caller) -> dict[str, Any]:
    row = await kb.jobs.cancel(job_id, identity.user_id)
    if row is None:
        raise HTTPException(404, "No such job")
    view = job_view(row)
    if view["status"] in ("COMPLETED", "FAILED") and not row["cancel_requested"]:
        return {"message": f"The job had already ended ({view['status']})", "job": view}
    if view["status"] == "RUNNING":
        return {"message": "The job will stop after the document it is reading", "job": view}
    return {"message": "The job was cancelled", "job": view}


@router.get("/api/rag/sources")
async def sources(identity: Caller, request: Request) -> dict[str, Any]:
    """Per-source document counts of what the caller sees (their uploads and the shared
    sources). Always with `indexed_stats`: the page breaks on a 200 without it."""
    kb = knowledge_of(request).kb
    stats = await kb.documents.stats(identity.user_id) if kb is not None else {}
    listing = [
        {"id": s.id, "name": s.name, "kind": s.kind, "documents": stats.get(s.id, (0, 0))[0],
         "chunks": stats.get(s.id, (0, 0))[1]}
        for s in SOURCES.values()
    ]  # fmt: skip
    return {
        "total_documents": sum(d for d, _ in stats.values()),
        "total_chunks": sum(c for _, c in stats.values()),
        "indexed_stats": {s["id"]: s["documents"] for s in listing},
        "sources": listing,
        "available": kb is not None,
    }


@router.delete("/api/rag/sources/{source}")
async def clear_source(source: str, kb: KB, identity: Caller) -> dict[str, Any]:
    owner = owner_for(source, identity)
    removed = await kb.documents.clear(source, owner)
    return {"message": f"Cleared {removed} documents from {source}", "source": source, "deleted": removed}


@router.get("/api/rag/health")
async def health(identity: Caller, request: Request) -> dict[str, Any]:
    return await knowledge_of(request).health()


@router.get("/api/rag/config")
async def config(kb: KB, identity: Caller, request: Request) -> dict[str, Any]:
    settings = settings_of(request)
    return {
        **kb.describe(),
        "sources": [{"id": s.id, "name": s.name, "kind": s.kind} for s in SOURCES.values()],
        "local_roots_configured": bool(settings.local_roots),
        "web_max_pages_per_source": settings.rag_web_max_pages,
        "uploads": {
            "formats": ["pdf", "docx", "markdown", "html", "text"],
            "max_bytes": settings.rag_max_upload_bytes,
            "max_pdf_pages": settings.rag_max_pdf_pages,
            "max_documents_per_user": settings.rag_max_documents_per_user,
            "max_storage_bytes_per_user": settings.rag_max_storage_bytes_per_user,
        },
    }


@router.get("/api/rag/models")
async def models(kb: KB, identity: Caller) -> dict[str, Any]:
    await kb.embeddings.load()
    model = {"name": kb.embeddings.name, "dimensions": kb.embeddings.dim, "active": True,
             "runtime": kb.embeddings.engine}  # fmt: skip
    return {"embedding_models": [model], "current": kb.embeddings.name}
