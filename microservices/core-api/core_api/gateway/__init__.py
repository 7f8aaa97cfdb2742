"""core-api's gateway to the services (see proxy.py for how a request flows)."""

from .proxy import Gateway

__all__ = ["Gateway"]
