"""The routers, in the order the app includes them."""

from . import ai, execute, files, sessions, terminal

routers = [sessions.router, files.router, execute.router, ai.router, terminal.router]
