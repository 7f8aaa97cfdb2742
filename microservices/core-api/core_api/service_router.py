"""The gateway's entry module, as main.py imports it.

`Gateway` is the raw ASGI app uvicorn serves: requests under a service's path
prefix are authenticated and streamed to that service with a signed
`X-Internal-Auth` header; everything else goes to core-api's FastAPI app.
`health_overview_router` adds `GET /api/health`. The code lives in `gateway/`.
"""

from .gateway import Gateway, Route, RouteTable, health_overview_router

__all__ = ["Gateway", "Route", "RouteTable", "health_overview_router"]
