"""REST view of mcp-service: GET /api/mcp/tools, POST /api/mcp/tool."""
