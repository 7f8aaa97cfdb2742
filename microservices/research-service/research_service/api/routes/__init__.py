"""research-service's routers, one per area."""

from . import analysis, chat, search

routers = [search.router, chat.router, analysis.router]
