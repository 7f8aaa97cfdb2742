"""JSON errors in the contract's shape: `{"detail": ..., "message": ...}`.

The front end shows `message`; FastAPI clients read `detail`. Every error a
service returns goes through here, so bad input is a 4xx with JSON, never a
bare 500 page.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("harvis.errors")


def error_body(status: int, detail: Any, message: str | None = None) -> bytes:
    if message is None:
        message = detail if isinstance(detail, str) else "Request failed"
    return orjson.dumps({"detail": detail, "message": message})


def json_error(status: int, detail: Any, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error_body(status, detail, message),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _summarise_validation(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "Invalid request"


def _jsonable_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # pydantic puts exception objects in `ctx`; make them strings so they serialise.
    out = []
    for err in errors:
        err = dict(err)
        if "ctx" in err:
            err["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        err.pop("input", None)  # never echo secrets such as passwords back
        out.append(err)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return json_error(exc.status_code, exc.detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        return json_error(422, _jsonable_errors(errors), _summarise_validation(errors))

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return json_error(500, "Internal server error", "Something went wrong on our side")
