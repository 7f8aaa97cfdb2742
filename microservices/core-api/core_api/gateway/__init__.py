"""core-api's gateway to the services (see proxy.py for how a request flows)."""

from .health import health_overview_router
from .proxy import Gateway
from .routes import Route, RouteTable

__all__ = ["Gateway", "Route", "RouteTable", "health_overview_router"]
