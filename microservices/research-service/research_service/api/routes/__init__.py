"""research-service's routers, one per area."""

from . import analysis, chat, documents, knowledge, search

routers = [search.router, chat.router, analysis.router, knowledge.router, documents.router]
