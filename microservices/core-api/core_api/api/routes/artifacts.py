"""`/api/artifacts`: make an artifact from a spec, read it, download its file, preview a code
project, delete it, list them. The caller's own artifacts only: another user's id is a 404,
exactly like a missing one; an id that is not a UUID is a 422.

POST answers at once with the `generating` artifact; the worker (artifacts/worker.py) renders
it and the client polls GET until `ready` or `failed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from ...artifacts.render import EXTENSION
from ...artifacts.specs import CODE_TYPES, MAX_SPEC_BYTES, ArtifactCreate
from ...store.artifacts import QuotaExceeded, filename
from ..body_limit import BoundedBodyRequest
from ..deps import ArtifactsDep, Caller

NOT_FOUND = "Artifact not found"
QUOTA = "Artifact storage quota exceeded (ARTIFACT_STORAGE_QUOTA_MB): delete some artifacts first"


class _SpecBodyRequest(BoundedBodyRequest):
    max_body = MAX_SPEC_BYTES + 64 * 1024  # the spec plus its type, title and description


class SpecBodyRoute(APIRoute):
    """413 for bodies past a spec's limit, while reading (body_limit.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_SpecBodyRequest(request.scope, request.receive))

        return bounded


router = APIRouter(prefix="/api/artifacts", tags=["artifacts"], route_class=SpecBodyRoute)

ArtifactId = uuid.UUID


@router.get("/")
async def list_artifacts(
    user: Caller, artifacts: ArtifactsDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    return {"artifacts": await artifacts.store.list(user.id, limit)}


@router.post("", status_code=201, responses={413: {"description": "Spec too large, or the storage quota is full"}})
async def create_artifact(body: ArtifactCreate, user: Caller, artifacts: ArtifactsDep) -> dict[str, Any]:
    """The artifact, `generating`: poll GET /api/artifacts/{id} until `ready` or `failed`."""
    try:
        return await artifacts.create(user.id, body)
    except QuotaExceeded:
        raise HTTPException(413, QUOTA) from None


@router.get("/{artifact_id}")
async def get_artifact(artifact_id: ArtifactId, user: Caller, artifacts: ArtifactsDep) -> dict[str, Any]:
    found = await artifacts.store.get(user.id, artifact_id)
    if found is None:
        raise HTTPException(404, NOT_FOUND)
    return found


@router.get(
    "/{artifact_id}/download",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, 409: {"description": "Not ready yet"}},
)
async def download_artifact(artifact_id: ArtifactId, user: Caller, artifacts: ArtifactsDep) -> Response:
    row = await artifacts.store.file(user.id, artifact_id)
    if row is None:
        raise HTTPException(404, NOT_FOUND)
    if row["file"] is None and row["status"] == "ready" and row["content"]:
        # A code block found in an answer (before artifacts were rendered): its text.
        data, mime, name = row["content"].encode(), "text/plain; charset=utf-8", filename(row["title"], "txt")
    elif row["status"] != "ready" or row["file"] is None:
        problem = f"The artifact is {row['status']}, not ready"
        return JSONResponse({"detail": problem, "message": problem, "status": row["status"]}, status_code=409)
    else:
        data, mime, name = row["file"], row["mime_type"], filename(row["title"], EXTENSION[row["type"]])
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")  # headers are Latin-1
    return Response(
        data,
        media_type=mime,
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/{artifact_id}/preview")
async def preview_artifact(artifact_id: ArtifactId, user: Caller, artifacts: ArtifactsDep) -> dict[str, Any]:
    """A code project as Sandpack takes it: `{content: {files, entry_file}, framework, dependencies}`."""
    project = await artifacts.store.preview(user.id, artifact_id)
    if project is None:
        raise HTTPException(404, NOT_FOUND)
    if project["type"] not in CODE_TYPES:
        raise HTTPException(409, f"A {project['type']} has no code preview: download it")
    return {
        "content": {
            "files": project["files"],
            "entry_file": project["entry_file"],
            "entryFile": project["entry_file"],
            "dependencies": project["dependencies"],
        },
        "framework": project["framework"],
        "dependencies": project["dependencies"],
    }


@router.delete("/{artifact_id}")
async def delete_artifact(artifact_id: ArtifactId, user: Caller, artifacts: ArtifactsDep) -> dict[str, Any]:
    if not await artifacts.store.delete(user.id, artifact_id):
        raise HTTPException(404, NOT_FOUND)
    return {"deleted": True, "id": str(artifact_id)}
