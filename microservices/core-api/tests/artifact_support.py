"""Specs of every artifact type (the contract's minimal forms and a few more), and reading the
files back with the libraries that consume them (openpyxl, python-docx, python-pptx) — and,
for PDFs, a small reader of reportlab's content streams (pypdf is not in core-api's venv)."""

from __future__ import annotations

import base64
import io
import re
import zlib
from typing import Any

SPREADSHEET = {"sheets": [{"name": "Sales", "rows": [["a", 1, 2.5], ["b", 3, "=B1+B2"]]}]}
DOCUMENT = {
    "blocks": [
        {"type": "heading", "text": "Quarterly report", "level": 1},
        {"type": "paragraph", "text": "Revenue grew & costs < plan."},
        {"type": "list", "items": ["first point", {"text": "second point", "items": ["nested point"]}]},
        {"type": "table", "rows": [["h1", "h2"], ["a", "b"]]},
    ]
}
PRESENTATION = {"slides": [{"title": "Intro", "bullets": ["one", "two"]}, {"title": "End", "bullets": ["bye"]}]}
CODE = {
    "files": {"/App.tsx": "export default function App() { return <h1>Hi</h1>; }", "styles.css": "h1 {}"},
    "entry_file": "App.tsx",
    "framework": "react",
    "dependencies": {"react": "^18.2.0"},
}
SPECS: dict[str, dict[str, Any]] = {
    "spreadsheet": SPREADSHEET,
    "document": DOCUMENT,
    "pdf": DOCUMENT,
    "presentation": PRESENTATION,
    "code": CODE,
    "website": CODE,
    "app": CODE,
}


def png(width: int = 40, height: int = 20) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), "blue").save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def xlsx_rows(data: bytes, sheet: str | None = None) -> tuple[list[list[Any]], Any]:
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[sheet] if sheet else wb.worksheets[0]
    return [[c.value for c in row] for row in ws.iter_rows()], ws


def docx_paragraphs(data: bytes) -> tuple[list[tuple[str, str]], list[Any]]:
    import docx

    doc = docx.Document(io.BytesIO(data))
    return [(p.style.name, p.text) for p in doc.paragraphs], doc.tables


def pptx_slides(data: bytes) -> list[tuple[str, list[str]]]:
    import pptx

    prs = pptx.Presentation(io.BytesIO(data))
    out = []
    for slide in prs.slides:
        texts = [
            p.text
            for shape in slide.placeholders
            if shape.placeholder_format.idx == 1
            for p in shape.text_frame.paragraphs
        ]
        out.append((slide.shapes.title.text, texts))
    return out


_STREAM = re.compile(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", re.S)
_TJ = re.compile(rb"\((.*?)(?<!\\)\)\s*Tj", re.S)


def pdf_text(data: bytes) -> str:
    """The text a PDF reader extracts from reportlab's pages: every `(…) Tj` string of every
    content stream (ASCII85 and Flate decoded), in order."""
    assert data.startswith(b"%PDF-")
    texts: list[str] = []
    for head, body in _STREAM.findall(data):
        if b"ASCII85Decode" in head:
            body = base64.a85decode(body.strip().removesuffix(b"~>"))
        if b"FlateDecode" in head:
            body = zlib.decompress(body)
        for raw in _TJ.findall(body):
            texts.append(re.sub(rb"\\(.)", rb"\1", raw).decode("latin-1"))
    return "\n".join(texts)
