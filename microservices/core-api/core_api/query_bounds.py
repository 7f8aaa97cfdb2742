"""Bounds for integer query and path parameters, so out-of-range input is a 422, not a 500.

Python ints have no limit, PostgreSQL's bigint does (2**63 - 1): the fuzzer's
`offset=820619130998817816576` reached asyncpg and came back a 500 (issue 14).
No real page starts ten million rows in, so offsets stop there; ids stop at
bigint's end.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_OFFSET = 10_000_000
MAX_BIGINT = 2**63 - 1

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip (0-{MAX_OFFSET})")]
UserId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="a user's id")]
