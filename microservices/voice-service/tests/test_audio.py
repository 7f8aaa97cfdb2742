"""Decoding uploads: every format browsers record (and wav/mp3/m4a), hostile input → 4xx."""

from __future__ import annotations

import pytest
from conftest import tone_wav, transcode

from voice_service.audio import SAMPLE_RATE, AudioError, decode


@pytest.mark.parametrize(
    ("container", "codec"),
    [("webm", "libopus"), ("ogg", "libopus"), ("mp3", "libmp3lame"), ("ipod", "aac"), ("wav", "pcm_s16le")],
    ids=["webm-opus", "ogg-opus", "mp3", "m4a-aac", "wav"],
)
def test_decodes_browser_and_common_formats(speech_wav: bytes, container: str, codec: str) -> None:
    data = speech_wav if container == "wav" else transcode(speech_wav, container, codec)
    samples = decode(data, max_seconds=60)
    reference = decode(speech_wav, max_seconds=60)
    assert samples.dtype.name == "float32"
    # Same duration within codec padding (opus/aac/mp3 add a few tens of ms).
    assert abs(samples.size - reference.size) < 0.15 * SAMPLE_RATE
    assert float(abs(samples).max()) > 0.05


def test_resamples_to_16k_mono() -> None:
    samples = decode(tone_wav(2.0, rate=44100), max_seconds=60)
    assert abs(samples.size - 2 * SAMPLE_RATE) < 200


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not audio at all" * 100,
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        bytes(range(256)) * 50,
        b"%PDF-1.4\n" + b"x" * 500,
    ],
    ids=["empty", "text", "header-only", "noise", "pdf"],
)
def test_hostile_input_is_422(data: bytes) -> None:
    with pytest.raises(AudioError) as err:
        decode(data, max_seconds=60)
    assert err.value.status == 422 and err.value.message


def test_truncated_container_keeps_what_decodes_or_is_422(speech_wav: bytes) -> None:
    webm = transcode(speech_wav, "webm", "libopus")
    for cut in (len(webm) // 2, 60):
        try:
            samples = decode(webm[:cut], max_seconds=60)
        except AudioError as exc:
            assert exc.status == 422
        else:
            assert samples.size > 0


def test_too_long_is_413() -> None:
    with pytest.raises(AudioError) as err:
        decode(tone_wav(3.0), max_seconds=1.0)
    assert err.value.status == 413 and "1 s" in err.value.message


def test_too_short_is_422() -> None:
    with pytest.raises(AudioError) as err:
        decode(tone_wav(0.01), max_seconds=60)
    assert err.value.status == 422
