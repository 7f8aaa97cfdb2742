"""The research-service app factory (`research_service.main:app` is the served instance)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI

from harvis_common.app import create_service_app
from harvis_common.core_client import CoreClient
from harvis_common.http_client import SafeHTTPClient
from harvis_common.llm import client_from_settings
from harvis_common.ssrf import SSRFPolicy

from .api.deps import research_quotas
from .api.routes import routers
from .fetch import PageFetcher
from .knowledge.state import KnowledgeState
from .providers import SearchEngine
from .research import Researcher
from .settings import Settings
from .store.cache import make_cache


def build_researcher(settings: Settings, http: aiohttp.ClientSession, pages: SafeHTTPClient, cache, llm) -> Researcher:
    fetcher = PageFetcher(
        pages,
        cache,
        page_timeout_s=settings.research_fetch_timeout_s,
        budget_s=settings.research_fetch_budget_s,
        max_bytes=settings.research_max_page_bytes,
        concurrency=settings.research_fetch_concurrency,
    )
    return Researcher(
        SearchEngine.from_settings(settings, http),
        fetcher,
        cache,
        llm,
        default_model=settings.default_model,
        max_chunks=settings.research_max_chunks,
    )


def create_app(settings: Settings) -> FastAPI:
    """The app for `settings` (tests build their own; `app` below is the served one)."""
    knowledge = KnowledgeState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Search providers are configured endpoints (not user input): a plain session.
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.research_search_timeout_s, sock_connect=5), trust_env=False
        )
        pages = SafeHTTPClient(SSRFPolicy.from_setting(settings.research_ssrf_allowlist))
        cache = make_cache(settings.redis_url, settings.research_cache_ttl_s, settings.research_redis_prefix)
        llm = client_from_settings(settings)
        history = CoreClient(settings.core_api_url)
        quotas = research_quotas(settings)
        app.state.settings = settings
        app.state.knowledge = knowledge
        app.state.quotas = quotas
        app.state.cache = cache
        app.state.history = history
        app.state.researcher = build_researcher(settings, http, pages, cache, llm)
        await knowledge.start(app.state.researcher.fetcher)
        try:
            yield
        finally:
            await knowledge.stop()
            await history.close()
            await llm.close()
            await pages.close()
            await http.close()
            await cache.close()
            await quotas.close()

    async def _cache_ready() -> str:
        return await app.state.cache.ping()

    async def _quotas_ready() -> str:
        return await app.state.quotas.describe()

    app = create_service_app(
        settings,
        title="Harvis Research",
        description=(
            "Web search, page extraction, research chat with citations, fact-checking, comparative research"
            " and the knowledge base (documents, ingestion jobs, hybrid search)."
        ),
        slug="research",
        routers=routers,
        # The knowledge base is reported, never failing readiness: research works without it.
        ready_checks={"cache": _cache_ready, "quotas": _quotas_ready, "knowledge_base": knowledge.ready},
        lifespan=lifespan,
    )
    return app
