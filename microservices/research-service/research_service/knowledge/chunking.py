"""Sections of a document → chunks of about 1000 characters for the knowledge base.

A document arrives as sections (`Section`: a page of a PDF, the text under a heading of a
Markdown, HTML or DOCX file), each with its location. A chunk never straddles a section, so
its location (page, heading path) is exact; a chunk under a heading is embedded with its
heading path before it, so even a short one says what it is about. Inside a section, text is
cut at paragraphs, then sentences, then words, and consecutive chunks of a section overlap by
whole sentences (up to ~200 characters), so a fact cut at a boundary is whole in one of them.

Why not langchain-text-splitters (the splitter the design card names): it imports
langchain-core, which brings langsmith, zstandard, requests, PyYAML, tenacity, jsonpatch and
more — about 20 packages and 55 MB for 0.3 MB of splitting code — and its Markdown header
splitter and recursive splitter would still need this module's glue (locations, overlap by
sentences, page sections). This is the part of it the knowledge base uses.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

CHUNK_CHARS = 1000
OVERLAP_CHARS = 200
MAX_LOCATION_CHARS = 200

_PARAGRAPHS = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=\S)")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


@dataclass(frozen=True, slots=True)
class Section:
    location: str  # "page 3", "Install > Linux", "" for the whole text
    text: str
    heading: bool = False  # the location is a heading path (it says what the text is about)


@dataclass(frozen=True, slots=True)
class Piece:
    """One chunk: its location, its text, what is embedded and that text's hash."""

    location: str
    text: str
    embed_text: str
    content_hash: str


def markdown_sections(text: str) -> list[Section]:
    """A Markdown text cut at its ATX headings (`#`…`######`, not inside code fences); each
    section's location is its heading path ("Guide > Install > Linux")."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            loc = " > ".join(t for _, t in path)[:MAX_LOCATION_CHARS]
            sections.append(Section(loc, body, heading=bool(path)))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m is None:
            lines.append(line)
            continue
        flush()
        level, title = len(m.group(1)), m.group(2).strip()
        path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
    flush()
    return sections


def _sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def _units(text: str, size: int) -> list[str]:
    """Paragraphs, those too long cut into sentences, those too long cut at words."""
    out: list[str] = []
    for para in _PARAGRAPHS.split(text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= size:
            out.append(para)
            continue
        for sentence in _sentences(para):
            while len(sentence) > size:
                cut = sentence.rfind(" ", 0, size)
                cut = cut if cut > size // 2 else size
                out.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if sentence:
                out.append(sentence)
    return out


def _overlap(units: list[str], limit: int) -> list[str]:
    """The last whole sentences of a chunk's units, up to `limit` characters."""
    tail: list[str] = []
    used = 0
    for unit in reversed(units):
        for sentence in reversed(_sentences(unit)):
            if used + len(sentence) + 1 > limit:
                return tail
            tail.insert(0, sentence)
            used += len(sentence) + 1
    return tail


def chunk_sections(
    sections: list[Section], size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS, model: str = ""
) -> list[Piece]:
    """The chunks of a document's sections, in order. `model` goes into each chunk's hash, so
    a chunk embedded by another model is never taken for an unchanged one."""
    chunks: list[tuple[Section, list[str]]] = []  # (its section, its units)
    for section in sections:
        current: list[str] = []
        length = 0
        for unit in _units(section.text, size):
            if current and length + len(unit) + 1 > size:
                chunks.append((section, current))
                current = _overlap(current, overlap) if overlap else []
                length = sum(len(u) + 1 for u in current)
                if length + len(unit) + 1 > size:
                    current, length = [], 0
            current.append(unit)
            length += len(unit) + 1
        if current:
            chunks.append((section, current))
    pieces = []
    for section, units in chunks:
        text = "\n".join(units)
        embed_text = f"{section.location}\n{text}" if section.heading and section.location else text
        digest = hashlib.sha256(f"{model}\x1f{embed_text}".encode()).hexdigest()
        pieces.append(Piece(section.location, text, embed_text, digest))
    return pieces
