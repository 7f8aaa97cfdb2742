"""Request bodies of research-service's routes (the answers are plain JSON objects)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, field_validator

from ..knowledge.catalogue import SOURCES
from ..store.documents import UPLOADS

MAX_QUERY = 2000
# A query, message or claim: surrounding blanks dropped, and then not empty.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY)]


class WebSearchRequest(BaseModel):
    query: Text
    max_results: int = Field(default=5, ge=1, le=20)
    extract_content: bool = False


class SourcesRequest(BaseModel):
    query: Text
    max_sources: int | None = Field(default=None, ge=1, le=20)


class HistoryItem(BaseModel):
    role: str = Field(max_length=32)
    content: str | None = Field(default="", max_length=100_000)


class ResearchChatRequest(BaseModel):
    message: Text
    history: list[HistoryItem] = Field(default_factory=list, max_length=500)
    model: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=64)
    enableWebSearch: bool = True
    # Ground the answer in the user's knowledge base too (their uploads and the shared sources):
    # its relevant excerpts join the numbered sources.
    use_knowledge_base: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    # Accepted like /api/chat's, not used here.
    attachments: list[Any] | None = None
    text_only: bool | None = None
    low_vram: bool | None = None
    tts_engine: str | None = Field(default=None, max_length=100)


class FactCheckRequest(BaseModel):
    claim: Text
    model: str | None = Field(default=None, max_length=200)


class CompareRequest(BaseModel):
    topics: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(min_length=2, max_length=5)
    model: str | None = Field(default=None, max_length=200)

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        topics = [t.strip() for t in v if t.strip()]
        if len(set(t.lower() for t in topics)) < 2:
            raise ValueError("give at least two different topics")
        return topics


# ---------------------------------------------------------------- the knowledge base (/api/rag)

Item = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PathItem = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
UrlItem = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000, pattern=r"^https?://[^\s]+$")
]


def _known(ids: list[str]) -> list[str]:
    unknown = [s for s in ids if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose among {', '.join(SOURCES)}")
    return list(dict.fromkeys(ids))


class UpdateRequest(BaseModel):
    """POST /api/rag/update-local: what the page sends (empty lists left out)."""

    sources: list[Item] = Field(min_length=1, max_length=len(SOURCES))
    keywords: list[Item] = Field(default_factory=list, max_length=50)
    extra_urls: list[UrlItem] = Field(default_factory=list, max_length=50)
    python_libraries: list[Item] = Field(default_factory=list, max_length=50)
    docker_topics: list[Item] = Field(default_factory=list, max_length=50)
    kubernetes_topics: list[Item] = Field(default_factory=list, max_length=50)
    ansible_paths: list[PathItem] = Field(default_factory=list, max_length=50)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        ids = _known(v)
        if UPLOADS in ids:
            raise ValueError("uploads are added with POST /api/rag/documents, not by a job")
        return ids


class RebuildRequest(BaseModel):
    source: Item

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return _known([v])[0]


class SearchRequest(BaseModel):
    query: Text
    k: int = Field(default=5, ge=1, le=50)
    sources: list[Item] | None = Field(default=None, max_length=len(SOURCES))

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: list[str] | None) -> list[str] | None:
        return _known(v) if v else None
