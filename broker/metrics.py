"""Prometheus metrics, derived from what the broker already records: every audit event is counted by
event name and reason code (never by person), and requests by route template and status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("sts_broker_events", "Audit events by name and reason code",
                              ["event", "reason"], registry=self.registry)
        self.requests = Histogram("sts_broker_request_seconds", "Request latency by route and status",
                                  ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        # Labelled children by label values (event names, reason codes, route templates, methods and
        # statuses all come from the code, so these stay small): labels() takes a lock on every call.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_event(self, event: str, fields: Mapping[str, object]) -> None:
        reason = fields.get("reason")
        self._child(self.events, event, reason if isinstance(reason, str) else "").inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
