"""browser-service's Prometheus metrics, read from the session registry at scrape time
(`SessionManager.stats()`): nothing is added to the browser's own paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class BrowserCollector(Collector):
    def __init__(self) -> None:
        self.stats: Callable[[], dict[str, Any]] | None = None

    def attach(self, stats: Callable[[], dict[str, Any]] | None) -> None:
        self.stats = stats

    def describe(self) -> list[Any]:
        return list(self._families({"open": 0, "max": 0, "started": 0, "crashes": 0}))

    def collect(self) -> Iterator[Any]:
        if self.stats is not None:
            yield from self._families(self.stats())

    @staticmethod
    def _families(s: dict[str, Any]) -> Iterator[Any]:
        yield GaugeMetricFamily("harvis_browser_sessions_open", "Browser sessions open now.", value=s["open"])
        yield GaugeMetricFamily("harvis_browser_sessions_max", "BROWSER_MAX_SESSIONS.", value=s["max"])
        yield CounterMetricFamily("harvis_browser_sessions_started", "Browser sessions started.", value=s["started"])
        yield CounterMetricFamily("harvis_browser_crashes", "Browsers that crashed or hung.", value=s["crashes"])


BROWSER_METRICS = BrowserCollector()
REGISTRY.register(BROWSER_METRICS)
