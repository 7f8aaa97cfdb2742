"""Turning a validated spec (specs.py) into a file's bytes. Pure and blocking: the worker runs
these in its thread pool, never on the event loop.

- spreadsheet → XLSX (openpyxl): a string cell starting with `=` is written as a real formula;
- document → DOCX (python-docx): headings in Word's own "Heading N" styles, real tables,
  "List Bullet"/"List Number" lists (nested levels use "List Bullet 2"…);
- pdf → PDF (reportlab's platypus): text drawn with the standard fonts, so it stays
  extractable; the standard fonts cover Latin-1 (other characters show as missing glyphs);
- presentation → PPTX (python-pptx): one slide per item, title and bullets in the layout's
  placeholders, an image on the right half, notes in the notes page;
- code, website, app → a ZIP of the files (the preview serves the files themselves).
Nothing in a spec is ever executed.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from .specs import CODE_TYPES, DocumentSpec, ListItem, PresentationSpec, SpreadsheetSpec, parse_spec

MIME = {
    "spreadsheet": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "document": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
    "presentation": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "code": "application/zip",
    "website": "application/zip",
    "app": "application/zip",
}
EXTENSION = {
    "spreadsheet": "xlsx",
    "document": "docx",
    "pdf": "pdf",
    "presentation": "pptx",
    "code": "zip",
    "website": "zip",
    "app": "zip",
}


@dataclass(frozen=True)
class Rendered:
    data: bytes
    mime_type: str


def render(artifact_type: str, title: str, spec: dict[str, Any]) -> Rendered:
    """The file for a stored spec (validated again: the row may predate a tighter limit)."""
    parsed = parse_spec(artifact_type, spec)
    if artifact_type == "spreadsheet":
        data = spreadsheet(title, parsed)
    elif artifact_type == "document":
        data = document(title, parsed)
    elif artifact_type == "pdf":
        data = pdf(title, parsed)
    elif artifact_type == "presentation":
        data = presentation(title, parsed)
    elif artifact_type in CODE_TYPES:
        data = code_zip(parsed.files)
    else:  # pragma: no cover - the type column's CHECK and specs.TYPES agree
        raise ValueError(f"unknown artifact type {artifact_type!r}")
    return Rendered(data, MIME[artifact_type])


# ---------------------------------------------------------------- XLSX


def spreadsheet(title: str, spec: SpreadsheetSpec) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)  # streams rows: bounded memory, fast
    wb.properties.title = title
    bold = Font(bold=True)
    for sheet in spec.sheets:
        ws = wb.create_sheet(sheet.name)
        for i, width in enumerate(sheet.column_widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
        if sheet.header and sheet.rows:
            ws.freeze_panes = "A2"
        for r, row in enumerate(sheet.rows):
            if r == 0 and sheet.header:
                cells = []
                for value in row:
                    cell = WriteOnlyCell(ws, value=value)
                    cell.font = bold
                    cells.append(cell)
                ws.append(cells)
            else:
                ws.append(row)  # "=…" strings become formulas (openpyxl's data type "f")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ---------------------------------------------------------------- DOCX


def document(title: str, spec: DocumentSpec) -> bytes:
    from docx import Document

    doc = Document()
    doc.core_properties.title = title
    for block in spec.blocks:
        kind = block.type
        if kind == "heading":
            doc.add_heading(block.text, level=block.level)
        elif kind == "paragraph":
            doc.add_paragraph(block.text)
        elif kind == "list":
            _docx_list(doc, block.items, block.ordered, 1)
        elif kind == "table":
            _docx_table(doc, block.rows, block.header)
        elif kind == "page_break":
            doc.add_page_break()
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _docx_list(doc: Any, items: list[Any], ordered: bool, level: int) -> None:
    style = ("List Number" if ordered else "List Bullet") + (f" {level}" if level > 1 else "")
    for item in items:
        if isinstance(item, ListItem):
            doc.add_paragraph(item.text, style=style)
            _docx_list(doc, item.items, ordered, level + 1)
        else:
            doc.add_paragraph(item, style=style)


def _docx_table(doc: Any, rows: list[list[str]], header: bool) -> None:
    columns = max(len(r) for r in rows) or 1
    table = doc.add_table(rows=len(rows), cols=columns)
    table.style = "Table Grid"
    for r, (row, cells) in enumerate(zip(rows, (tr.cells for tr in table.rows), strict=True)):
        for value, cell in zip(row, cells, strict=False):
            cell.text = value
            if r == 0 and header:
                for run in cell.paragraphs[0].runs:
                    run.bold = True


# ---------------------------------------------------------------- PDF


def pdf(title: str, spec: DocumentSpec) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    styles = getSampleStyleSheet()
    body = styles["BodyText"]
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, title=title, author="Harvis", leftMargin=2 * cm, rightMargin=2 * cm, topMargin=2 * cm
    )
    story: list[Any] = []
    for block in spec.blocks:
        kind = block.type
        if kind == "heading":
            story.append(Paragraph(_pdf_text(block.text), styles[f"Heading{block.level}"]))
        elif kind == "paragraph":
            story.append(Paragraph(_pdf_text(block.text), body))
        elif kind == "list":
            story.append(_pdf_list(block.items, block.ordered, body))
        elif kind == "table":
            columns = max(len(r) for r in block.rows) or 1
            data = [[Paragraph(_pdf_text(c), body) for c in row] + [""] * (columns - len(row)) for row in block.rows]
            table = Table(data, repeatRows=1 if block.header else 0, colWidths=[doc.width / columns] * columns)
            style = [("GRID", (0, 0), (-1, -1), 0.5, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP")]
            if block.header:
                style.append(("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey))
            table.setStyle(TableStyle(style))
            story.append(table)
        elif kind == "page_break":
            story.append(PageBreak())
    doc.build(story)
    return out.getvalue()


_NEWLINES = re.compile(r"\r\n|\r|\n")


def _pdf_text(text: str) -> str:
    """Plain text for platypus's mini-markup: escaped, line breaks kept."""
    return _NEWLINES.sub("<br/>", escape(text))


def _pdf_list(items: list[Any], ordered: bool, style: Any) -> Any:
    from reportlab.platypus import ListFlowable, Paragraph
    from reportlab.platypus import ListItem as PdfListItem

    flow: list[Any] = []
    for item in items:
        if isinstance(item, ListItem):
            parts: list[Any] = [Paragraph(_pdf_text(item.text), style)]
            if item.items:
                parts.append(_pdf_list(item.items, ordered, style))
            flow.append(PdfListItem(parts))
        else:
            flow.append(PdfListItem(Paragraph(_pdf_text(item), style)))
    return ListFlowable(flow, bulletType="1" if ordered else "bullet", start=None if ordered else "•")


# ---------------------------------------------------------------- PPTX


def presentation(title: str, spec: PresentationSpec) -> bytes:
    from pptx import Presentation
    from pptx.util import Emu

    prs = Presentation()
    prs.core_properties.title = title
    layout = prs.slide_layouts[1]  # "Title and Content"
    width, height = prs.slide_width, prs.slide_height
    for item in spec.slides:
        slide = prs.slides.add_slide(layout)
        slide.shapes.title.text = item.title
        body = slide.placeholders[1]
        if item.bullets:
            frame = body.text_frame
            frame.text = item.bullets[0]
            for bullet in item.bullets[1:]:
                frame.add_paragraph().text = bullet
        if item.image is not None:
            half = Emu(int(width) // 2)
            if item.bullets:
                body.width = half - body.left
            else:
                body._element.getparent().remove(body._element)  # no empty "Click to add text"
            top = Emu(int(height) // 4)
            picture = io.BytesIO(item.image)
            if _landscape(item.image):
                slide.shapes.add_picture(picture, half, top, width=Emu(int(half) - int(width) // 20))
            else:
                slide.shapes.add_picture(picture, half, top, height=Emu(int(height) * 2 // 3))
        elif not item.bullets:
            body._element.getparent().remove(body._element)
        if item.notes:
            slide.notes_slide.notes_text_frame.text = item.notes
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def _landscape(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.width >= img.height


# ---------------------------------------------------------------- code


def code_zip(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in files.items():
            zf.writestr(path, content)
    return out.getvalue()
