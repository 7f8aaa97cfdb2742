"""A user's uploaded document: checked, read, chunked, embedded and stored while the request
waits, so it is searchable once the upload answers. The file itself is not kept: only its
extracted sections (for a rebuild) and its chunks, under the `uploads` source, owned by the
user. The same file uploaded again is the same document (its id is the file's SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from ..store.documents import UPLOADS, NewDocument
from .base import KnowledgeBase, Outcome, sections_hash
from .extract import MIME, ExtractError, clean_filename, extract, kind_of


@dataclass(frozen=True)
class Upload:
    name: str
    kind: str
    uri: str
    data: bytes


def check_upload(filename: str, data: bytes, max_bytes: int) -> Upload:
    """The upload's clean name and kind, or an ExtractError (4xx) — before anything costly."""
    name = clean_filename(filename)
    if len(data) > max_bytes:
        raise ExtractError(413, f"{name}: larger than {max_bytes:,} bytes")
    if not data:
        raise ExtractError(422, f"{name}: the file is empty")
    return Upload(name, kind_of(name, data), "upload:" + hashlib.sha256(data).hexdigest(), data)


async def ingest_upload(kb: KnowledgeBase, owner_id: int, upload: Upload) -> Outcome:
    existing = await kb.documents.find(UPLOADS, owner_id, upload.uri)
    if existing is not None:  # the same file again: the document it already is
        return Outcome("unchanged", existing, chunks=existing["chunk_count"], duplicate=True)
    _, sections = await asyncio.to_thread(extract, upload.kind, upload.data, upload.name, kb.limits)
    doc = NewDocument(
        UPLOADS,
        owner_id,
        upload.uri,
        upload.name,
        MIME[upload.kind],
        len(upload.data),
        sections_hash(sections),
        sections,
    )
    return await kb.ingest(doc, limits=kb.upload_limits)
