"""A user's own documents in the knowledge base (upload, list, delete) and the search over
what they see: their uploads and the shared sources. Someone else's document is a 404."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from harvis_common.quotas import QUOTA_RESPONSES

from ...knowledge.extract import ExtractError
from ...knowledge.uploads import check_upload, ingest_upload
from ...store.documents import LimitReached, document_view
from ..deps import KB, Caller, charge_ingest, read_upload, settings_of
from ..schemas import SearchRequest

router = APIRouter(tags=["knowledge base"])

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/api/rag/documents",
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses={**QUOTA_RESPONSES, 200: {"description": "The same file was uploaded before: that document"}},
)
async def upload_document(kb: KB, identity: Caller, request: Request) -> Any:
    """Upload a PDF, DOCX, Markdown, HTML or text file (multipart field `file`): it is read,
    chunked and embedded before the answer, so it is searchable once this returns."""
    settings = settings_of(request)
    filename, data = await read_upload(request, settings.rag_max_upload_bytes)
    try:
        upload = check_upload(filename, data, settings.rag_max_upload_bytes)
        await charge_ingest(request, identity)
        outcome = await ingest_upload(kb, identity.user_id, upload)
    except (ExtractError, LimitReached) as exc:
        raise HTTPException(exc.status, exc.message) from exc
    body = {**document_view(outcome.document), "duplicate": outcome.duplicate}
    return JSONResponse(body, status_code=200 if outcome.duplicate else 201)


@router.get("/api/rag/documents")
async def list_documents(
    kb: KB,
    identity: Caller,
    request: Request,
    limit: int = Query(default=100, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
) -> dict[str, Any]:
    settings = settings_of(request)
    rows = await kb.documents.uploads(identity.user_id, limit, offset)
    count, used = await kb.documents.usage(identity.user_id)
    return {
        "documents": [document_view(r) for r in rows],
        "count": count,
        "storage": {
            "used_bytes": used,
            "limit_bytes": settings.rag_max_storage_bytes_per_user,
            "documents_limit": settings.rag_max_documents_per_user,
        },
    }


@router.delete("/api/rag/documents/{document_id}")
async def delete_document(document_id: uuid.UUID, kb: KB, identity: Caller) -> dict[str, Any]:
    if not await kb.documents.delete_upload(document_id, identity.user_id):
        raise HTTPException(404, "No such document")
    return {"deleted": True, "id": str(document_id)}


@router.post("/api/rag/search")
async def search(body: SearchRequest, kb: KB, identity: Caller) -> dict[str, Any]:
    """The best chunks for the query among the caller's uploads and the shared sources
    (hybrid: meaning and exact terms), best first."""
    hits = await kb.search(body.query, identity.user_id, body.k, body.sources)
    return {"query": body.query, "results": [h.view() for h in hits], "count": len(hits)}
