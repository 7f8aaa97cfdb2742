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

    @field_validator("research_providers")
    @classmethod
    def _providers(cls, value: str) -> str:
        names = [p.strip().lower() for p in value.split(",") if p.strip()]
        bad = [p for p in names if p not in PROVIDERS]
        if bad or not names:
            raise ValueError(f"RESEARCH_PROVIDERS: unknown provider(s) {bad}; choose among {', '.join(PROVIDERS)}")
        return ",".join(names)

    @property
    def provider_order(self) -> list[str]:
        return self.research_providers.split(",")
