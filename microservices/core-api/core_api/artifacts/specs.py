"""Artifact specs: one pydantic model per type, with hard limits.

A spec is data, never code: the renderers (render.py) only ever lay out what these models
allow. Every limit is checked here, before a row exists, so a hostile or runaway spec (10 000
rows, deep nesting, a huge image) is a 422 naming the limit, not a stalled worker. The
renderers can then count on bounded work (the bench: a 1 000-row sheet or a 20-page document
in well under 2 s).

The minimal forms of the contract are always accepted:
- spreadsheet: `{"sheets": [{"name": "...", "rows": [["a", 1, 2.5], ["b", 3, "=B1+B2"]]}]}`
  (a string cell starting with `=` is a formula);
- document, pdf: `{"blocks": [{"type": "heading", "text": "...", "level": 1},
  {"type": "paragraph", "text": "..."}, {"type": "list", "items": ["..."]},
  {"type": "table", "rows": [["h1", "h2"], ["a", "b"]]}]}`;
- presentation: `{"slides": [{"title": "...", "bullets": ["..."]}]}`;
- code, website, app: `{"files": {"App.tsx": "..."}, "entry_file": "App.tsx",
  "framework": "react", "dependencies": {}}`.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from typing import Annotated, Any, Literal

import imagesize
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

TYPES = ("spreadsheet", "document", "pdf", "presentation", "code", "website", "app")
CODE_TYPES = frozenset({"code", "website", "app"})
ArtifactType = Literal["spreadsheet", "document", "pdf", "presentation", "code", "website", "app"]

MAX_SPEC_BYTES = 2 * 1024 * 1024  # the whole spec as JSON
MAX_TITLE = 200
MAX_TEXT = 20_000  # one paragraph, heading, list item, cell or bullet
# Spreadsheets
MAX_SHEETS = 20
MAX_ROWS = 5_000  # per sheet
MAX_COLUMNS = 100
MAX_CELLS = 200_000  # all sheets together
MAX_FORMULA = 2_000
# Documents and PDFs
MAX_BLOCKS = 2_000
MAX_LIST_ITEMS = 500
MAX_LIST_DEPTH = 3  # a list inside a list inside a list
MAX_TABLE_ROWS = 1_000
MAX_TABLE_COLUMNS = 20
MAX_TABLE_CELLS = 20_000  # all tables together
# Presentations
MAX_SLIDES = 100
MAX_BULLETS = 20
MAX_IMAGE_BYTES = 1024 * 1024  # decoded
MAX_IMAGE_SIDE = 4096  # pixels
# Code
MAX_FILES = 50
MAX_FILE_BYTES = 200_000
MAX_DEPENDENCIES = 50

# Characters XML (XLSX, DOCX, PPTX) cannot hold; PostgreSQL cannot hold U+0000 either.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Formulas that reach outside the workbook (web requests, DDE, macros) are refused.
_UNSAFE_FORMULA = re.compile(
    r"\b(WEBSERVICE|FILTERXML|CALL|REGISTER(\.ID)?|EXEC|RTD|DDE|HYPERLINK|IMPORTDATA|IMPORTXML|IMPORTHTML|IMPORTRANGE|IMAGE)\s*\(",
    re.I,
)
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")
_PATH = re.compile(r"^[A-Za-z0-9_.@-][A-Za-z0-9_.@/ -]{0,199}$")
_PACKAGE = re.compile(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]{0,213}$")
_VERSION = re.compile(r"^[A-Za-z0-9^~<>=*.| +_-]{1,64}$")


def _clean(value: str) -> str:
    return _XML_ILLEGAL.sub("", value)


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_clean)]
ShortText = Annotated[str, Field(max_length=MAX_TITLE), AfterValidator(_clean)]


def _cell(value: Any) -> Any:
    """A cell: text (`=…` a formula), a finite number, a boolean or empty."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > 10**15:  # what a spreadsheet holds exactly
            raise PydanticCustomError("cell_number", "Numbers must be within ±10^15")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("cell_number", "Numbers must be finite")
        return value
    if isinstance(value, str):
        value = _clean(value)
        if value.startswith("=") and len(value) > 1:
            if len(value) > MAX_FORMULA:
                raise PydanticCustomError("formula", "Formulas must be at most {n} characters", {"n": MAX_FORMULA})
            if _UNSAFE_FORMULA.search(value) or "|" in value:
                raise PydanticCustomError(
                    "formula", "This formula reaches outside the workbook: {f}", {"f": value[:80]}
                )
        elif len(value) > MAX_TEXT:
            raise PydanticCustomError("cell_text", "Cells hold at most {n} characters", {"n": MAX_TEXT})
        return value
    raise PydanticCustomError("cell_type", "A cell is text, a number, a boolean or null")


Cell = Annotated[Any, AfterValidator(_cell)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a spec may grow: unknown keys are ignored


# ---------------------------------------------------------------- spreadsheet


class Sheet(_Spec):
    name: ShortText = "Sheet1"
    rows: list[Annotated[list[Cell], Field(max_length=MAX_COLUMNS)]] = Field(default_factory=list, max_length=MAX_ROWS)
    # Bold the first row (a header) and fix it while scrolling.
    header: bool = False
    column_widths: list[Annotated[float, Field(ge=1, le=255)]] = Field(default_factory=list, max_length=MAX_COLUMNS)

    @field_validator("name")
    @classmethod
    def _sheet_name(cls, value: str) -> str:
        value = _SHEET_NAME_BAD.sub(" ", value).strip().strip("'")[:31]
        return value or "Sheet"


class SpreadsheetSpec(_Spec):
    sheets: list[Sheet] = Field(min_length=1, max_length=MAX_SHEETS)

    @model_validator(mode="after")
    def _bounded(self) -> SpreadsheetSpec:
        cells = sum(len(r) for s in self.sheets for r in s.rows)
        if cells > MAX_CELLS:
            raise PydanticCustomError("too_many_cells", "At most {n} cells in all sheets", {"n": MAX_CELLS})
        seen: set[str] = set()
        for i, sheet in enumerate(self.sheets):  # Excel refuses two sheets of one name (case-insensitive)
            name = sheet.name
            while name.lower() in seen:
                name = f"{sheet.name[:27]} {i + 1}"[:31]
                i += 1
            sheet.name = name
            seen.add(name.lower())
        return self


# ---------------------------------------------------------------- document and pdf


class ListItem(_Spec):
    text: Text = ""
    items: list[ListEntry] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


ListEntry = Annotated[Text | ListItem, Field(union_mode="left_to_right")]
ListItem.model_rebuild()


def _list_depth(items: list[Any], depth: int = 1) -> int:
    deepest = depth
    for item in items:
        if isinstance(item, ListItem) and item.items:
            deepest = max(deepest, _list_depth(item.items, depth + 1))
    return deepest


def _list_count(items: list[Any]) -> int:
    return sum(1 + (_list_count(i.items) if isinstance(i, ListItem) else 0) for i in items)


class Heading(_Spec):
    type: Literal["heading"]
    text: Text
    level: int = Field(default=1, ge=1, le=6)


class Paragraph(_Spec):
    type: Literal["paragraph"]
    text: Text


class ListBlock(_Spec):
    type: Literal["list"]
    items: list[ListEntry] = Field(max_length=MAX_LIST_ITEMS)
    ordered: bool = False

    @model_validator(mode="after")
    def _bounded(self) -> ListBlock:
        if _list_depth(self.items) > MAX_LIST_DEPTH:
            raise PydanticCustomError("list_depth", "Lists nest at most {n} levels", {"n": MAX_LIST_DEPTH})
        if _list_count(self.items) > MAX_LIST_ITEMS:
            raise PydanticCustomError("list_items", "A list holds at most {n} items", {"n": MAX_LIST_ITEMS})
        return self


class TableBlock(_Spec):
    type: Literal["table"]
    rows: list[Annotated[list[Cell], Field(max_length=MAX_TABLE_COLUMNS)]] = Field(
        min_length=1, max_length=MAX_TABLE_ROWS
    )
    header: bool = True  # the first row is the header

    @field_validator("rows")
    @classmethod
    def _text_cells(cls, rows: list[list[Any]]) -> list[list[str]]:
        # A document's table shows values: formulas are a spreadsheet's.
        return [["" if c is None else str(c) for c in row] for row in rows]


class PageBreak(_Spec):
    type: Literal["page_break"]


Block = Annotated[Heading | Paragraph | ListBlock | TableBlock | PageBreak, Field(discriminator="type")]


class DocumentSpec(_Spec):
    blocks: list[Block] = Field(min_length=1, max_length=MAX_BLOCKS)

    @model_validator(mode="after")
    def _bounded(self) -> DocumentSpec:
        cells = sum(len(r) for b in self.blocks if isinstance(b, TableBlock) for r in b.rows)
        if cells > MAX_TABLE_CELLS:
            raise PydanticCustomError("too_many_cells", "At most {n} table cells in all", {"n": MAX_TABLE_CELLS})
        return self


# ---------------------------------------------------------------- presentation


def _image(value: str) -> bytes:
    """A PNG or JPEG as base64 (a `data:` URL or bare), at most MAX_IMAGE_BYTES and
    MAX_IMAGE_SIDE pixels a side (read from its header, never decoded in full here)."""
    if value.startswith("data:"):
        value = value.partition(",")[2]
    if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 8:
        raise PydanticCustomError("image_size", "Images must be at most {n} bytes", {"n": MAX_IMAGE_BYTES})
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("image", "An image is a base64 PNG or JPEG") from None
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise PydanticCustomError("image", "An image is a base64 PNG or JPEG")
    # The header only (imagesize): core-api validates specs without the rendering libraries;
    # the renderer's Pillow decodes the image when it places it.
    width, height = imagesize.get(io.BytesIO(data))
    if width <= 0 or height <= 0:
        raise PydanticCustomError("image", "The image cannot be read")
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
        raise PydanticCustomError("image_size", "Images are at most {n} pixels a side", {"n": MAX_IMAGE_SIDE})
    return data


class Slide(_Spec):
    title: Text = ""
    bullets: list[Text] = Field(default_factory=list, max_length=MAX_BULLETS)
    notes: Text = ""
    image: Annotated[str, AfterValidator(_image)] | None = None  # holds the decoded bytes after validation


class PresentationSpec(_Spec):
    slides: list[Slide] = Field(min_length=1, max_length=MAX_SLIDES)


# ---------------------------------------------------------------- code, website, app


class CodeSpec(_Spec):
    files: dict[str, Annotated[str, Field(max_length=MAX_FILE_BYTES)]] = Field(min_length=1, max_length=MAX_FILES)
    entry_file: str = ""
    framework: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,39}$")] = "react"
    dependencies: dict[str, str] = Field(default_factory=dict, max_length=MAX_DEPENDENCIES)

    @field_validator("files")
    @classmethod
    def _paths(cls, files: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for path, content in files.items():
            clean = path.lstrip("/")  # Sandpack's "/App.tsx" is the project's App.tsx
            parts = clean.split("/")
            if not _PATH.match(clean) or any(p in ("", ".", "..") for p in parts):
                raise PydanticCustomError("file_path", "Not a relative file path: {p}", {"p": path[:100]})
            out[clean] = content
        return out

    @field_validator("dependencies")
    @classmethod
    def _deps(cls, deps: dict[str, str]) -> dict[str, str]:
        for name, version in deps.items():
            if not _PACKAGE.match(name) or not _VERSION.match(version):
                raise PydanticCustomError("dependency", "Not a package and version: {n}", {"n": name[:100]})
        return deps

    @model_validator(mode="after")
    def _entry(self) -> CodeSpec:
        self.entry_file = self.entry_file.lstrip("/")
        if not self.entry_file:
            self.entry_file = next(iter(self.files))
        if self.entry_file not in self.files:
            raise PydanticCustomError("entry_file", "entry_file must be one of the files")
        return self


SPEC_MODELS: dict[str, type[_Spec]] = {
    "spreadsheet": SpreadsheetSpec,
    "document": DocumentSpec,
    "pdf": DocumentSpec,
    "presentation": PresentationSpec,
    "code": CodeSpec,
    "website": CodeSpec,
    "app": CodeSpec,
}


def spec_bytes(spec: dict[str, Any]) -> int:
    """The spec's size as JSON; also refuses what cannot be stored (nesting past 255 levels,
    integers past 64 bits, lone surrogates) with a 422."""
    try:
        size = len(orjson.dumps(spec))
    except orjson.JSONEncodeError as exc:
        raise PydanticCustomError(
            "spec_unstorable", "The spec cannot be stored: {reason}", {"reason": str(exc)}
        ) from None
    if size > MAX_SPEC_BYTES:
        raise PydanticCustomError("spec_too_large", "A spec is at most {n} bytes as JSON", {"n": MAX_SPEC_BYTES})
    if _has_nul(spec):  # jsonb cannot hold U+0000
        raise PydanticCustomError("nul_character", "Text must not contain NUL (\\u0000) characters")
    return size


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def parse_spec(artifact_type: str, spec: dict[str, Any]) -> Any:
    """The typed spec (what render.py lays out); ValidationError or PydanticCustomError when
    it breaks its type's schema or a limit."""
    spec_bytes(spec)
    return SPEC_MODELS[artifact_type].model_validate(spec)


class ArtifactCreate(BaseModel):
    """POST /api/artifacts, and the block a chat answer carries (convention.py)."""

    model_config = ConfigDict(extra="ignore")

    type: ArtifactType
    title: Annotated[str, Field(min_length=1, max_length=MAX_TITLE), AfterValidator(_clean)]
    description: Annotated[str, Field(max_length=2_000), AfterValidator(_clean)] = ""
    spec: dict[str, Any]

    @model_validator(mode="after")
    def _valid_spec(self) -> ArtifactCreate:
        try:
            parse_spec(self.type, self.spec)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PydanticCustomError(
                "spec_invalid",
                "Invalid {type} spec{at}: {msg} ({count} problem(s))",
                {
                    "type": self.type,
                    "at": f" at {where}" if where else "",
                    "msg": first["msg"],
                    "count": exc.error_count(),
                },
            ) from None
        self.title = self.title.strip() or "Untitled"
        return self

    def stored_spec(self) -> dict[str, Any]:
        """What is stored: a code project's normalised files (paths without a leading `/`, the
        entry file filled in), any other spec as given (it is validated again when rendered)."""
        if self.type in CODE_TYPES:
            return CodeSpec.model_validate(self.spec).model_dump()
        return self.spec
