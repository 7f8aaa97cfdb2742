"""research-service settings (environment variables, see .env.example)."""

from __future__ import annotations

from pydantic import Field, field_validator

from harvis_common.config import LLMSettings, ServiceSettings

PROVIDERS = ("ddgs", "searxng", "tavily")


class Settings(ServiceSettings, LLMSettings):
    service_name: str = "research-service"
    # Search providers tried in order (comma-separated: ddgs, searxng, tavily); a provider without
    # its setting (SEARXNG_URL, TAVILY_API_KEY) is skipped, and a failing one falls back to the next.
    research_providers: str = "searxng,tavily,ddgs"
    # SearXNG instance (its JSON API, `format=json` enabled in its settings.yml); empty: not used.
    searxng_url: str = ""
    # Tavily's API key (empty: not used) and base URL.
    tavily_api_key: str = ""
    tavily_api_url: str = "https://api.tavily.com"
    # Time one provider may take before the next one is tried, in seconds.
    research_search_timeout_s: float = Field(default=8.0, gt=0)
    # Page fetching: per page and for all pages of one request (seconds), largest page (bytes),
    # pages fetched at once.
    research_fetch_timeout_s: float = Field(default=8.0, gt=0)
    research_fetch_budget_s: float = Field(default=15.0, gt=0)
    research_max_page_bytes: int = Field(default=2_000_000, ge=10_000)
    research_fetch_concurrency: int = Field(default=6, ge=1, le=32)
    # Hosts and networks pages may be fetched from beyond the public internet
    # ("127.0.0.3/32, intranet.example"); empty: public addresses only.
    research_ssrf_allowlist: str = ""
    # Results searched and pages read for a research answer, and excerpts (chunks) given to the LLM.
    research_max_sources: int = Field(default=5, ge=1, le=20)
    research_max_chunks: int = Field(default=8, ge=1, le=40)
    # How long search results and extracted pages are cached, in seconds (0: no caching). Redis
    # when REDIS_URL is set (keys under REDIS_KEY_PREFIX), else in-process.
    research_cache_ttl_s: int = Field(default=3600, ge=0)
    redis_url: str = ""
    research_redis_prefix: str = "harvis:research:"
    # Per-user quota: research turns in any hour — each web search, sources lookup, research chat
    # and fact-check counts one, a comparison one per topic. Over it: a JSON 429 + Retry-After
    # (research chat: before its stream starts). Counted in Redis when REDIS_URL is set.
    research_turns_per_hour: int = Field(default=100, ge=1)
    # Longest answer, in tokens (as for chat); 0: the backend's own limit.
    chat_max_tokens: int = Field(default=0, ge=0)
    # core-api's address for the internal history API (research chat saves its turns there).
    core_api_url: str = "http://127.0.0.1:8000"

    # The knowledge base (/api/rag): PostgreSQL DSN (asyncpg) with the pgvector extension. Empty,
    # or a database without pgvector: web research works, the knowledge-base routes answer 503.
    database_url: str = ""
    # Directories the local_docs and ansible_playbooks sources read (comma-separated absolute
    # paths); a user names paths only under them. Empty: those sources have nothing to read.
    rag_local_roots: str = ""
    # Uploads: largest file (bytes), most pages of a PDF, most bytes a DOCX unpacks to (a zip
    # bomb is refused before it is read).
    rag_max_upload_bytes: int = Field(default=20_000_000, ge=1000)
    rag_max_pdf_pages: int = Field(default=500, ge=1)
    rag_max_docx_unpacked_bytes: int = Field(default=100_000_000, ge=1000)
    # Per user: documents kept, bytes of uploaded files kept, ingestions (uploads and jobs) in
    # any hour (over it: a JSON 429 + Retry-After).
    rag_max_documents_per_user: int = Field(default=1000, ge=1)
    rag_max_storage_bytes_per_user: int = Field(default=500_000_000, ge=1000)
    rag_ingests_per_hour: int = Field(default=60, ge=1)
    # Web-doc sources: most pages one job fetches for one source.
    rag_web_max_pages: int = Field(default=25, ge=1, le=500)

    @field_validator("research_providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        names = [p.strip().lower() for p in value.split(",") if p.strip()]
        bad = [p for p in names if p not in PROVIDERS]
        if bad or not names:
            raise ValueError(f"RESEARCH_PROVIDERS: unknown provider(s) {bad}; choose among {', '.join(PROVIDERS)}")
        return ",".join(names)

    @field_validator("rag_local_roots")
    @classmethod
    def _roots(cls, value: str) -> str:
        roots = [r.strip() for r in value.split(",") if r.strip()]
        relative = [r for r in roots if not r.startswith("/")]
        if relative:
            raise ValueError(f"RAG_LOCAL_ROOTS: absolute paths only, not {relative}")
        return ",".join(roots)

    @property
    def provider_order(self) -> list[str]:
        return self.research_providers.split(",")

    @property
    def local_roots(self) -> list[str]:
        return [r for r in self.rag_local_roots.split(",") if r]
