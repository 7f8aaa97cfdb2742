"""Speech beyond a plain /api/tts answer: a WAV streamed sentence by sentence as it is
synthesised, speech saved to the audio store (mic-chat's spoken answer, TTS jobs), and what
the job queue's workers do with a TTS job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .audio import streaming_wav_header, wav_bytes
from .engines import EngineError, Engines, Speech, TTSEngine
from .store.files import AudioStore

log = logging.getLogger("voice.speech")


async def speak_to_file(
    engines: Engines, store: AudioStore, user_id: int, text: str, engine: str | None, voice: str | None
) -> str:
    """Synthesise `text` and save it for the user; returns its URL path (`/api/audio/<name>.wav`)."""
    tts = engines.tts_engine(engine)
    speech = await engines.synthesize(tts, text, voice)
    return await asyncio.to_thread(store.save, user_id, wav_bytes(speech.pcm16, speech.sample_rate))


async def stream_wav(engines: Engines, engine: TTSEngine, text: str, voice: str | None) -> AsyncIterator[bytes]:
    """Runs the engine's generator in a thread, passing pieces through a queue."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Speech | BaseException | None] = asyncio.Queue(maxsize=8)

    def produce() -> None:
        try:
            for piece in engine.stream(text, voice):
                asyncio.run_coroutine_threadsafe(queue.put(piece), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except BaseException as exc:  # handed to the consumer
            asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()

    async with engines.tts_semaphore:
        task = loop.run_in_executor(None, produce)
        first = True
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    log.warning("streamed synthesis failed", extra={"error": str(item)})
                    break
                if first:
                    yield streaming_wav_header(item.sample_rate)
                    first = False
                yield item.pcm16
        finally:
            while not task.done():  # let the producer finish (it blocks on a full queue)
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)


def job_handler(
    engines: Engines, store: AudioStore, default_engine: str
) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """A TTS job's work: its text spoken to a file; the job's `data` says where."""

    async def handle(job: dict[str, Any]) -> dict[str, Any]:
        p = job["payload"]
        path = await speak_to_file(engines, store, job["user_id"], p["text"], p.get("tts_engine"), p.get("voice_id"))
        return {"audio_path": path, "engine": p.get("tts_engine") or default_engine}

    return handle


def job_error_is_final(exc: BaseException) -> bool:
    """Bad input will not get better on a retry; a missing engine or a crash might."""
    return isinstance(exc, EngineError) and exc.status == 422
