"""Prometheus metrics, derived from what the broker already records: every audit event is counted by
event name and reason code (never by person), and requests by route template and status."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from broker import telemetry

METADATA_EVENTS = frozenset({"saml_metadata_refreshed", "saml_metadata_refused"})
# The refusals of a sign-in (its start, the OIDC callback, the SAML ACS) count as failed logins of their IdP.
LOGIN_PATHS = ("/login/", "/oidc/", "/saml/")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EventCounts(Collector):
    """sts_broker_events_total{event, reason}: one count per audit event, read when /metrics is scraped.
    Every answered request writes an audit event, so counting one is a dict update under a lock (~0.3 us)
    rather than a prometheus_client Counter's labels lookup and value lock (~1.2 us). The same counter
    under another name and labels counts SAML metadata refreshes by IdP and result."""

    def __init__(self, name: str = "sts_broker_events", documentation: str = "Audit events by name and reason code",
                 labels: tuple[str, str] = ("event", "reason")) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()  # audit events may come from worker threads

    def add(self, event: str, reason: str) -> None:
        key = (event, reason)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._documentation, labels=list(self._labels))
        with self._lock:
            counts = sorted(self._counts.items())
        for (event, reason), count in counts:
            family.add_metric([event, reason], count)
        yield family


class Metrics:
    def __init__(self, idps: frozenset[str] = frozenset()) -> None:
        self.registry = CollectorRegistry()
        self.events = EventCounts()
        self.registry.register(self.events)
        # Only configured IdP ids become label values: a path can name any IdP (`/login/<anything>`).
        self.idps = idps
        self.logins = EventCounts("sts_broker_logins", "Browser sign-ins by IdP and result (ok or the refusal "
                                  "reason)", ("idp", "result"))
        self.refusals = EventCounts("sts_broker_refusals", "Refused or failed requests by IdP (empty: none, other: "
                                    "not configured) and reason", ("idp", "reason"))
        for collector in (self.logins, self.refusals, *telemetry.COLLECTORS):
            self.registry.register(collector)
        # IdP ids come from the configuration and results are reason codes: few, fixed label values.
        self.saml_metadata = EventCounts("sts_broker_saml_metadata_refreshes",
                                         "SAML IdP metadata refreshes by IdP and result (ok or the refusal reason)",
                                         ("idp", "result"))
        self.registry.register(self.saml_metadata)
        self.requests = Histogram("sts_broker_request_seconds", "Request latency by route and status",
                                  ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        # Labelled children by label values (event names, reason codes, route templates, methods and
        # statuses all come from the code, so these stay small): labels() takes a lock on every call.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Histogram, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_event(self, event: str, fields: Mapping[str, object]) -> None:
        reason = fields.get("reason")
        self.events.add(event, reason if isinstance(reason, str) else "")
        if event == "login_succeeded":
            self.logins.add(self._idp(fields), "ok")
        elif event == "request_failed":
            idp, why = self._idp(fields), reason if isinstance(reason, str) else ""
            self.refusals.add(idp, why)
            if idp and str(fields.get("path", "")).startswith(LOGIN_PATHS):  # not /saml/idp/metadata
                self.logins.add(idp, why)
        if event in METADATA_EVENTS:
            result = "ok" if event == "saml_metadata_refreshed" else reason if isinstance(reason, str) else ""
            self.saml_metadata.add(str(fields.get("idp", "")), result)

    def _idp(self, fields: Mapping[str, object]) -> str:
        idp = fields.get("idp")
        if not isinstance(idp, str) or not idp:
            return ""
        return idp if idp in self.idps else "other"

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
