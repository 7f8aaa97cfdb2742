"""Decoding uploaded audio (whatever browsers record, plus wav/mp3/m4a) with PyAV, and
writing WAV. Decoding and writing are blocking: call them off the event loop."""

from __future__ import annotations

import io
import math
import struct
import wave

import av
import numpy as np

SAMPLE_RATE = 16_000  # what Whisper wants


class AudioError(Exception):
    """The upload is not usable audio; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def decode(data: bytes, max_seconds: float) -> np.ndarray:
    """16 kHz mono float32 samples of an audio file in any container PyAV (FFmpeg) reads.

    Empty, corrupt, truncated or non-audio input raises AudioError(422); a recording
    longer than `max_seconds` raises AudioError(413)."""
    if not data:
        raise AudioError("The audio file is empty")
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"Could not read the audio file (unsupported or corrupt format): {exc}") from exc
    try:
        streams = container.streams.audio
        if not streams:
            raise AudioError("The file has no audio stream")
        stream = streams[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(max_seconds * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.size
                if total > limit:
                    raise AudioError(f"The recording is longer than the {max_seconds:g} s limit", status=413)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError, OSError) as exc:
            if not chunks:
                raise AudioError(f"Could not decode the audio (corrupt or truncated): {exc}") from exc
            # A truncated tail: keep what decoded (browsers' MediaRecorder output often ends abruptly).
    finally:
        container.close()
    if not chunks:
        raise AudioError("The audio file contains no sound samples")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if samples.size < SAMPLE_RATE // 20:  # under 50 ms
        raise AudioError("The recording is too short to transcribe")
    return samples


def audio_seconds(samples: np.ndarray) -> int:
    """What decoded audio (16 kHz mono) costs: its length in whole seconds, rounded up."""
    return max(1, math.ceil(samples.size / SAMPLE_RATE))


def wav_bytes(pcm16: bytes, sample_rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def streaming_wav_header(sample_rate: int) -> bytes:
    """A WAV header for a stream of unknown length (sizes set to the maximum)."""
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
