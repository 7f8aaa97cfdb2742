"""Chunking extracted pages and ranking the chunks against the question with BM25."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

_WORD = re.compile(r"[\w]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "at",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "why",
        "when",
        "where",
        "does",
        "do",
        "did",
        "as",
        "not",
        "no",
        "but",
        "if",
        "than",
        "then",
        "so",
        "such",
        "can",
        "could",
        "will",
        "would",
        "should",
        "about",
        "into",
        "over",
        "under",
        "vs",
        "versus",
        "new",
        "top",
    ]
)


def tokenize(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1]


def split_text(text: str, size: int = 900, overlap: int = 150) -> list[str]:
    """Chunks of about `size` characters, cut at paragraph, then sentence, then word
    boundaries, each overlapping the previous by up to `overlap` characters."""
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text:
        return []
    if len(text) <= size:
        return [text]
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n|\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            pieces.append(para)
            continue
        sentences = re.split(r"(?<=[.!?])\s+", para)
        for s in sentences:
            while len(s) > size:
                cut = s.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                pieces.append(s[:cut])
                s = s[cut:].strip()
            if s:
                pieces.append(s)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > size:
            chunks.append(current)
            tail = current[-overlap:]
            space = tail.find(" ")
            tail = tail[space + 1 :] if space >= 0 else ""
            current = (tail + " " + piece).strip() if overlap else piece
            if len(current) > size:
                current = piece
        else:
            current = (current + "\n" + piece).strip() if current else piece
    if current:
        chunks.append(current)
    return chunks


@dataclass(slots=True)
class Chunk:
    source: int  # 1-based source number
    text: str
    score: float = 0.0


def best_chunks(question: str, documents: list[tuple[int, str]], limit: int, per_source: int = 3) -> list[Chunk]:
    """The `limit` chunks of `documents` ((source number, text)) most relevant to `question`
    by BM25, best first, at most `per_source` from one source, every source with a match
    represented (before a second chunk of another source)."""
    chunks = [Chunk(n, c) for n, text in documents for c in split_text(text)]
    if not chunks:
        return []
    corpus = [tokenize(c.text) or ["_"] for c in chunks]
    query = tokenize(question)
    if query:
        scores = BM25Okapi(corpus).get_scores(query)
        for c, s in zip(chunks, scores, strict=True):
            c.score = float(s)
    ordered = sorted(enumerate(chunks), key=lambda ic: (-ic[1].score, ic[0]))
    if any(c.score > 0 for c in chunks):  # chunks sharing no word with the question are left out
        ordered = [(i, c) for i, c in ordered if c.score > 0]
    picked: list[Chunk] = []
    count: dict[int, int] = {}
    # First the best chunk of each source, then the rest by score.
    for _, c in ordered:
        if c.source not in count:
            count[c.source] = 1
            picked.append(c)
    for _, c in ordered:
        if len(picked) >= limit * 2:
            break
        if c not in picked and count.get(c.source, 0) < per_source:
            count[c.source] = count.get(c.source, 0) + 1
            picked.append(c)
    picked.sort(key=lambda c: -c.score)
    return picked[:limit]
