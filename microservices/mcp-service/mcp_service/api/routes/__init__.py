"""The mcp-service REST routers (the MCP endpoint itself is mounted by app.py, see mcp_server.py)."""

from . import tools

routers = [tools.router]
