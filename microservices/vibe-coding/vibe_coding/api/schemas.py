"""Request bodies of the routes (the answers are plain dicts, shaped where they are built)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .. import assist
from ..sandbox.base import MAX_CODE_BYTES

# ---------------------------------------------------------------- sessions


class SessionCreate(BaseModel):
    name: str = Field(default="Untitled", min_length=1, max_length=200)
    language: str = Field(default="python", max_length=32)
    template: str | None = Field(default=None, max_length=64)


class SessionUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    language: str | None = Field(default=None, max_length=32)


# ---------------------------------------------------------------- files


class FileWrite(BaseModel):
    path: str = Field(min_length=1, max_length=1024)
    content: str = ""
    encoding: Literal["utf-8", "base64"] = "utf-8"


class FileCreate(FileWrite):
    type: Literal["file", "directory"] = "file"


class FileMove(BaseModel):
    src: str = Field(min_length=1, max_length=1024)
    dst: str = Field(min_length=1, max_length=1024)


# ---------------------------------------------------------------- execution


class ExecuteRequest(BaseModel):
    session_id: str
    code: str | None = Field(default=None, max_length=MAX_CODE_BYTES)
    command: str | None = Field(default=None, max_length=10_000)
    language: str = "python"
    timeout: float = Field(default=30, gt=0)


# ---------------------------------------------------------------- AI assist


class ProposeRequest(BaseModel):
    session_id: str
    instruction: str = Field(min_length=1, max_length=20_000)
    files: list[str] = Field(default_factory=list, max_length=50)


class ApplyRequest(BaseModel):
    session_id: str
    diff: str = Field(min_length=1, max_length=assist.MAX_DIFF_BYTES)
