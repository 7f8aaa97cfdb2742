"""The /api/n8n/ routes: create, execute, status, optimize (each user sees only their workflows).

Everything that reaches n8n passes `validate_workflow` with the safety rules (safety.py) and,
for literal URLs, the SSRF policy; the per-user limits (limits.py) are taken before n8n is
asked for anything, and given back when n8n fails.
"""

from . import executions, health, optimize, workflows

routers = [health.router, workflows.router, executions.router, optimize.router]
