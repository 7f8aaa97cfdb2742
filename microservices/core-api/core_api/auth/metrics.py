"""The auth layer's counters (stats.py, also shown by `/api/auth/stats`) as Prometheus
metrics: read at scrape time, so the login path itself pays nothing more."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .stats import AuthCounters

LOGIN_OUTCOMES = {
    "ok": "logins_ok",
    "failed": "logins_failed",  # unknown email or wrong password
    "rate_limited": "logins_rate_limited",
    "disabled": "logins_disabled",
}
SIGNUP_OUTCOMES = {"ok": "signups", "conflict": "signup_conflicts", "rate_limited": "signups_rate_limited"}


class AuthCollector(Collector):
    """Reports the counters of the AuthService running now (`attach`)."""

    def __init__(self) -> None:
        self.counters: AuthCounters | None = None

    def attach(self, counters: AuthCounters | None) -> None:
        self.counters = counters

    def describe(self) -> list[CounterMetricFamily]:
        return list(self._families(AuthCounters()))

    def collect(self) -> Iterator[CounterMetricFamily]:
        if self.counters is not None:
            yield from self._families(self.counters)

    @staticmethod
    def _families(c: AuthCounters) -> Iterator[CounterMetricFamily]:
        logins = CounterMetricFamily("harvis_auth_logins", "Login attempts by outcome.", labels=["outcome"])
        for outcome, name in LOGIN_OUTCOMES.items():
            logins.add_metric([outcome], getattr(c, name))
        yield logins
        signups = CounterMetricFamily("harvis_auth_signups", "Sign-ups by outcome.", labels=["outcome"])
        for outcome, name in SIGNUP_OUTCOMES.items():
            signups.add_metric([outcome], getattr(c, name))
        yield signups
        yield CounterMetricFamily(
            "harvis_auth_rate_limited",
            "Logins and sign-ups refused by a rate limit.",
            value=c.logins_rate_limited + c.signups_rate_limited,
        )
        yield CounterMetricFamily(
            "harvis_auth_shed_for_load",
            "Logins and sign-ups answered 503: the hashing queue was full.",
            value=c.shed_for_load,
        )
        yield CounterMetricFamily(
            "harvis_auth_tokens_rejected",
            "Bearer tokens refused (invalid, revoked, or their user disabled).",
            value=c.tokens_invalid + c.tokens_revoked_rejected + c.tokens_user_inactive,
        )


AUTH_METRICS = AuthCollector()
REGISTRY.register(AUTH_METRICS)
