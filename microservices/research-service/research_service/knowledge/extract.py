"""Text out of a file: PDF (pypdf), DOCX (python-docx), HTML (trafilatura), Markdown and plain
text, as `Section`s with their locations (a PDF's pages, the headings of the others).

Every function here is blocking: call them in a thread. Each file is checked before it is
read — its kind from its name and its first bytes, a PDF's page count, what a DOCX (a zip)
declares it unpacks to, against the limits — and anything unreadable raises `ExtractError`
with the HTTP status and a message for the user (413 too large, 415 not a kind we read, 422
malformed or without text). Nothing is written to disk.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from .chunking import Section, markdown_sections

MAX_TEXT_CHARS = 2_000_000  # of text from one document (~2,000 chunks)
MAX_ZIP_ENTRIES = 5_000
MAX_NAME_CHARS = 200

KINDS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".log": "text",
    ".csv": "text",
    ".yml": "text",
    ".yaml": "text",
}
MIME = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "markdown": "text/markdown",
    "html": "text/html",
    "text": "text/plain",
}


class ExtractError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pdf_pages: int
    max_docx_unpacked_bytes: int


def clean_filename(name: str) -> str:
    """The name a user's file is listed under: its last path component only (`../../etc/passwd`
    is `passwd`), without control characters or leading dots, at most 200 characters."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    return name[-MAX_NAME_CHARS:] or "document"


def kind_of(filename: str, data: bytes) -> str:
    """pdf, docx, markdown, html or text — from the name's extension, checked against the bytes."""
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    kind = KINDS.get(ext)
    if kind is None:
        if data.startswith(b"%PDF-"):
            kind = "pdf"
        elif data.startswith(b"PK\x03\x04"):
            kind = "docx"
        elif b"\x00" not in data[:8192]:
            head = data[:1024].lstrip().lower()
            kind = "html" if head.startswith((b"<!doctype html", b"<html")) else "text"
        else:
            raise ExtractError(
                415, f"{filename}: not a file the knowledge base reads (PDF, DOCX, Markdown, HTML, text)"
            )
    if kind == "pdf" and not data[:1024].lstrip().startswith(b"%PDF-"):
        raise ExtractError(422, f"{filename}: not a PDF file")
    if kind == "docx" and not data.startswith(b"PK\x03\x04"):
        raise ExtractError(422, f"{filename}: not a DOCX file")
    if kind in ("markdown", "html", "text") and b"\x00" in data:
        raise ExtractError(415, f"{filename}: a binary file, not text")
    return kind


def extract(kind: str, data: bytes, filename: str, limits: Limits) -> tuple[str, list[Section]]:
    """(title, sections) of a file. Blocking."""
    if len(data) > limits.max_bytes:
        raise ExtractError(413, f"{filename}: larger than {limits.max_bytes:,} bytes")
    if kind == "pdf":
        title, sections = filename, pdf_sections(data, filename, limits.max_pdf_pages)
    elif kind == "docx":
        title, sections = filename, docx_sections(data, filename, limits.max_docx_unpacked_bytes)
    elif kind == "html":
        title, sections = html_sections(decode(data), filename)
    elif kind == "markdown":
        title, sections = filename, markdown_sections(decode(data))
    else:
        title, sections = filename, text_sections(decode(data))
    sections = [s for s in sections if s.text.strip()]
    total = sum(len(s.text) for s in sections)
    if total > MAX_TEXT_CHARS:
        raise ExtractError(413, f"{filename}: more than {MAX_TEXT_CHARS:,} characters of text")
    if not sections:
        raise ExtractError(422, f"{filename}: no text found in it" + (" (a scanned PDF?)" if kind == "pdf" else ""))
    return title, sections


def decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_sections(text: str) -> list[Section]:
    text = text.strip()
    return [Section("", text)] if text else []


_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")


def _pdf_page_text(raw: str) -> str:
    """pypdf's lines joined into paragraphs: words split at a line end rejoined."""
    text = _HYPHEN_BREAK.sub(r"\1\2", raw.replace("\r", ""))
    return re.sub(r"[ \t]+", " ", _LINE_BREAK.sub(" ", text)).strip()


def pdf_sections(data: bytes, filename: str, max_pages: int) -> list[Section]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractError(422, f"{filename}: the PDF is encrypted")
        pages = len(reader.pages)
        if pages > max_pages:
            raise ExtractError(413, f"{filename}: {pages} pages, more than the {max_pages} a PDF may have")
        sections, total = [], 0
        for i, page in enumerate(reader.pages, start=1):
            text = _pdf_page_text(page.extract_text() or "")
            total += len(text)
            if total > MAX_TEXT_CHARS:
                raise ExtractError(413, f"{filename}: more than {MAX_TEXT_CHARS:,} characters of text")
            if text:
                sections.append(Section(f"page {i}", text))
        return sections
    except ExtractError:
        raise
    except Exception as exc:  # a malformed PDF can break the parser anywhere
        raise ExtractError(422, f"{filename}: not a readable PDF ({type(exc).__name__})") from exc


def check_zip(data: bytes, filename: str, max_unpacked: int) -> None:
    """A DOCX is a zip: refuse one that declares more than `max_unpacked` bytes (or entries)
    before anything is inflated. zipfile never inflates an entry past its declared size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise ExtractError(413, f"{filename}: {len(infos)} parts, more than a document has")
            unpacked = sum(i.file_size for i in infos)
            if unpacked > max_unpacked:
                raise ExtractError(413, f"{filename}: unpacks to {unpacked:,} bytes, more than {max_unpacked:,}")
            if "word/document.xml" not in z.namelist():
                raise ExtractError(422, f"{filename}: not a Word document (no word/document.xml)")
    except zipfile.BadZipFile as exc:
        raise ExtractError(422, f"{filename}: not a readable DOCX ({exc})") from exc


def docx_sections(data: bytes, filename: str, max_unpacked: int) -> list[Section]:
    check_zip(data, filename, max_unpacked)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [c.text.strip() for c in row.cells]
                    if any(cells):
                        lines.append(" | ".join(cells))
                lines.append("")
                continue
            text = block.text.strip()
            style = (block.style.name if block.style is not None else "") or ""
            m = re.match(r"(?:Heading|Überschrift|Titre)\s*(\d)", style)
            if text and (m or style == "Title"):
                lines.append("#" * (int(m.group(1)) if m else 1) + " " + text.replace("\n", " "))
            else:
                lines.append(text)
            lines.append("")
    except Exception as exc:  # a malformed DOCX can break the parser anywhere
        raise ExtractError(422, f"{filename}: not a readable DOCX ({type(exc).__name__})") from exc
    return markdown_sections("\n".join(lines))


def html_sections(html: str, filename: str) -> tuple[str, list[Section]]:
    """The page's main text as Markdown (trafilatura keeps its headings), cut at the headings."""
    import trafilatura

    try:
        md = trafilatura.extract(
            html,
            output_format="markdown",
            include_formatting=True,
            include_tables=True,
            include_comments=False,
            favor_recall=True,
        )
        meta = trafilatura.extract_metadata(html)
    except Exception as exc:
        raise ExtractError(422, f"{filename}: not readable HTML ({type(exc).__name__})") from exc
    title = (meta.title if meta is not None and meta.title else "") or filename
    return title, markdown_sections(md or "")
