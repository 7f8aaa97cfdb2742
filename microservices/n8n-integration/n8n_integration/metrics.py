"""n8n-integration's Prometheus metrics: workflow runs started through POST
/api/n8n/workflow/execute, by the status n8n recorded (success, error, running, …;
`unrecorded` when n8n kept no execution, `failed` when the run could not be started)."""

from __future__ import annotations

from prometheus_client import Counter

_KNOWN = frozenset({"success", "error", "crashed", "canceled", "running", "waiting", "new", "unrecorded", "failed"})

EXECUTIONS = Counter("harvis_n8n_executions", "Workflow runs by outcome.", ("status",))


def count_execution(status: str | None) -> None:
    EXECUTIONS.labels(status if status in _KNOWN else "other").inc()
