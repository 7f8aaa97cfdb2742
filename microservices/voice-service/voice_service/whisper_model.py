"""faster-whisper's WhisperModel, encoding the first 30 s window once when it also has to
detect the language.

faster-whisper 1.2 encodes that window twice when no language is given — once in
`detect_language`, once more in `generate_segments` — and the encoder is most of the work
for a short utterance (Whisper always encodes a full 30 s window): a 3 s request took
2.65 s instead of 1.45 s here. The front end's mic-chat sends no language, so every voice
turn paid it. Two small changes make the second encode a cache hit:

- language detection looks at exactly the window transcription starts with (the first
  segment drops the features' last frame, detection kept it: a 10 ms difference);
- within one `transcribe` call, `encode` remembers its last input and output (per thread,
  keyed by the input's bytes), so that window is not encoded again (a different one simply
  misses). Nothing is reused across calls: a repeated request costs what a new one does.

Imported only when faster-whisper is installed (the engine loads it lazily).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import numpy as np
from faster_whisper import WhisperModel


class SingleEncodeWhisperModel(WhisperModel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_encoded = threading.local()
        self.encodes = 0  # windows really encoded (for tests and benchmarks)

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        self._last_encoded.value = None  # detection and the first segment run inside this call
        return super().transcribe(*args, **kwargs)

    def encode(self, features: np.ndarray) -> Any:
        key = hashlib.blake2b(np.ascontiguousarray(features).data, digest_size=16).digest()
        last = getattr(self._last_encoded, "value", None)
        if last is not None and last[0] == key:
            return last[1]
        output = super().encode(features)
        self.encodes += 1
        self._last_encoded.value = (key, output)
        return output

    def detect_language(self, audio: np.ndarray | None = None, features: np.ndarray | None = None, **kwargs: Any):
        if audio is None and features is not None and kwargs.get("language_detection_segments", 1) == 1:
            # The first segment's frames, as generate_segments cuts them (content = all frames but the last).
            first = min(self.feature_extractor.nb_max_frames, features.shape[-1] - 1)
            features = features[..., : max(first, 1)]
        return super().detect_language(audio=audio, features=features, **kwargs)
