"""The voice-service app factory: engines, audio store, job queue and workers, wired in a
lifespan (`voice_service.main:app` is the served instance, built from the environment's settings)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from harvis_common.app import create_service_app
from harvis_common.core_client import CoreClient
from harvis_common.db import create_pool, ping

from .api.deps import VoiceState, voice_quotas
from .api.routes import routers
from .chat import Conversation
from .engines import Engines
from .research import WebResearch
from .settings import Settings
from .speech import job_error_is_final, job_handler
from .store.files import AudioStore
from .store.jobs import JobQueue

log = logging.getLogger("voice.main")


async def _housekeeping(st: VoiceState) -> None:
    """Unload idle models and delete old audio files, periodically."""
    interval = min(st.settings.voice_cleanup_interval_s, max(st.settings.voice_model_idle_s / 4, 1.0))
    last_cleanup = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.to_thread(st.engines.unload_idle)
        if loop.time() - last_cleanup >= st.settings.voice_cleanup_interval_s:
            last_cleanup = loop.time()
            removed = await asyncio.to_thread(st.store.cleanup, st.settings.voice_audio_max_age_h * 3600)
            if removed:
                log.info("old audio files removed", extra={"count": removed})
        await asyncio.sleep(interval)


def create_app(settings: Settings) -> FastAPI:
    """The app for `settings` (tests build their own; `main.app` is the served one)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = AudioStore(settings.audio_dir())
        store.ensure()
        pool = None
        queue = None
        if settings.database_url:
            pool = await create_pool(
                settings.database_url, service="voice-service", migrations="voice_service.migrations", max_size=5
            )
            queue = JobQueue(
                pool,
                lease_s=settings.voice_job_lease_s,
                max_attempts=settings.voice_job_max_attempts,
                poll_s=settings.voice_job_poll_s,
            )
        core = CoreClient(settings.core_api_url)
        st = VoiceState(
            settings=settings,
            engines=Engines(settings),
            store=store,
            queue=queue,
            core=core,
            conversation=Conversation(settings),
            research=WebResearch(settings, core),
            quotas=voice_quotas(settings),
        )
        app.state.voice = st
        app.state.db_pool = pool
        tasks = [asyncio.create_task(_housekeeping(st))]
        if queue is not None:
            handler = job_handler(st.engines, st.store, settings.voice_tts_engine)
            tasks += [
                asyncio.create_task(queue.run_worker(handler, job_error_is_final))
                for _ in range(settings.voice_job_workers)
            ]
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await st.research.close()
            await st.core.close()
            await st.conversation.close()
            await st.quotas.close()
            if pool is not None:
                await pool.close()

    async def database_ready() -> str:
        """Not configured is not an outage (only the job queue needs it); unreachable is."""
        pool = getattr(app.state, "db_pool", None)
        if pool is None:
            return "DATABASE_URL is not set: the TTS job queue is off"
        return await ping(pool)

    async def engines_ready() -> str:
        """Which engines can run here; not ready only when no STT or no TTS engine can."""
        st: VoiceState | None = getattr(app.state, "voice", None)
        if st is None:
            raise RuntimeError("starting")
        status = await asyncio.to_thread(st.engines.status)
        ok = {k: [n for n, s in v.items() if s in ("available", "loaded")] for k, v in status.items()}
        if not ok["stt"] or not ok["tts"]:
            raise RuntimeError(f"no usable engine: {status}")
        return "; ".join(
            f"{kind}: " + ", ".join(f"{n} ({s})" for n, s in engines.items()) for kind, engines in status.items()
        )

    async def quotas_ready() -> str:
        st: VoiceState | None = getattr(app.state, "voice", None)
        if st is None:
            raise RuntimeError("starting")
        return await st.quotas.describe()

    app = create_service_app(
        settings,
        title="Harvis Voice",
        description="Speech-to-text, text-to-speech, voice chat, audio files and TTS jobs.",
        slug="voice",
        routers=routers,
        ready_checks={"database": database_ready, "engines": engines_ready, "quotas": quotas_ready},
        lifespan=lifespan,
    )
    return app
