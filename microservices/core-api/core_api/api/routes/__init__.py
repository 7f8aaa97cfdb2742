"""core-api's own routes, one module per area. `routers` is what app.py includes, in this
order; the health routes (health.py) are made for the gateway, and the fleet's OpenAPI
document and docs page are the gateway's (gateway/openapi.py)."""

from . import admin, api_keys, artifacts, audit, auth, chat, history, internal, models, preferences

routers = [
    auth.router,
    admin.router,
    audit.router,
    chat.router,
    history.router,
    artifacts.router,
    models.router,
    api_keys.router,
    preferences.router,
    internal.router,
]
