"""A route class that refuses request bodies over a size limit with 413.

FastAPI reads the whole body before validating it; for endpoints that take a
few short strings, anything bigger than a few KiB is abuse, and is refused
while reading (Content-Length first, then the bytes actually received).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

MAX_BODY_BYTES = 64 * 1024
TOO_LARGE = "Request body too large"


class BoundedBodyRequest(Request):
    max_body = MAX_BODY_BYTES

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body:
                raise HTTPException(413, TOO_LARGE)
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise HTTPException(413, TOO_LARGE)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


class BoundedBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(BoundedBodyRequest(request.scope, request.receive))

        return bounded
