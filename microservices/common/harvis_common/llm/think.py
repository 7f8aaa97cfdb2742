"""Separating a model's `<think>…</think>` reasoning from its answer while it streams."""

from __future__ import annotations


class ThinkSplitter:
    """Splits streamed text into answer and `<think>…</think>` reasoning, even when a
    tag is cut across chunks (a possible tag prefix is held back until it resolves)."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._buf = ""
        self._thinking = False

    def feed(self, text: str) -> tuple[str, str]:
        """(content, reasoning) that can be released now."""
        self._buf += text
        content: list[str] = []
        reasoning: list[str] = []
        while self._buf:
            tag = self.CLOSE if self._thinking else self.OPEN
            idx = self._buf.find(tag)
            if idx >= 0:
                (reasoning if self._thinking else content).append(self._buf[:idx])
                self._buf = self._buf[idx + len(tag) :]
                self._thinking = not self._thinking
                continue
            keep = self._partial_tag_len(self._buf, tag)
            release, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            (reasoning if self._thinking else content).append(release)
            break
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        rest, self._buf = self._buf, ""
        return ("", rest) if self._thinking else (rest, "")

    @staticmethod
    def _partial_tag_len(buf: str, tag: str) -> int:
        for n in range(min(len(tag) - 1, len(buf)), 0, -1):
            if buf.endswith(tag[:n]):
                return n
        return 0
