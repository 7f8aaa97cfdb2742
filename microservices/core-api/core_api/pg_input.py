"""Input types for what PostgreSQL can store: refused at validation (422), not by the
database (a 500). Text columns cannot hold U+0000; jsonb cannot hold it in strings
either, and our JSON encoder (orjson) refuses integers past 64 bits and nesting past
255 levels, all of which JSON itself allows.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAX_JSON_BYTES = 64 * 1024  # message metadata: a few fields, never a document


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "Text must not contain NUL (\\u0000) characters")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        encoded = orjson.dumps(value)  # first: it also bounds the depth _has_nul walks
    except orjson.JSONEncodeError as exc:
        raise PydanticCustomError("json_unstorable", "Cannot be stored: {reason}", {"reason": str(exc)}) from None
    if len(encoded) > MAX_JSON_BYTES:
        raise PydanticCustomError("json_too_large", "Must be at most {limit} bytes as JSON", {"limit": MAX_JSON_BYTES})
    if _has_nul(value):
        raise PydanticCustomError("nul_character", "Text must not contain NUL (\\u0000) characters")
    return value


PgText = Annotated[str, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
