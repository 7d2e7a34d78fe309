"""The audit-event counter /metrics exposes: exact under concurrent writers, standard exposition."""

from __future__ import annotations

import threading

from broker.metrics import Metrics


def test_events_counted_from_many_threads_lose_nothing() -> None:
    metrics = Metrics()

    def count() -> None:
        for n in range(5000):
            metrics.observe_event("credentials_issued", {"cached": True})
            metrics.observe_event("request_failed", {"reason": "rate_limited" if n % 2 else "token_expired"})

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    text = metrics.render().decode()
    assert "# TYPE sts_broker_events_total counter" in text
    assert 'sts_broker_events_total{event="credentials_issued",reason=""} 40000.0' in text
    assert 'sts_broker_events_total{event="request_failed",reason="rate_limited"} 20000.0' in text
    assert 'sts_broker_events_total{event="request_failed",reason="token_expired"} 20000.0' in text


def test_a_reason_that_is_not_text_is_counted_without_one() -> None:
    metrics = Metrics()
    metrics.observe_event("login_refused", {"reason": 403})
    assert 'sts_broker_events_total{event="login_refused",reason=""} 1.0' in metrics.render().decode()


def test_the_light_histogram_exposes_what_prometheus_clients_would() -> None:
    """broker.telemetry.Latencies against prometheus_client's own Histogram fed the same observations."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from broker.telemetry import STORE_BUCKETS, Latencies

    ours, stock = CollectorRegistry(), CollectorRegistry()
    light = Latencies("t_seconds", "doc", "operation", STORE_BUCKETS)
    ours.register(light)
    reference = Histogram("t_seconds", "doc", ["operation"], buckets=STORE_BUCKETS, registry=stock)
    values = [0.0, 0.0005, 0.0007, 0.001, 0.003, 0.05, 0.5, 2.0, 7.5] * 3
    for n, seconds in enumerate(values):
        operation = "get" if n % 2 else "put"
        light.observe(operation, seconds)
        reference.labels(operation).observe(seconds)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(registry).decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if not s.name.endswith("_created")}

    assert samples(ours) == samples(stock)


def test_logins_and_refusals_are_counted_by_configured_idp_only() -> None:
    metrics = Metrics(idps=frozenset({"corp"}))
    metrics.observe_event("login_succeeded", {"idp": "corp"})
    metrics.observe_event("request_failed", {"idp": "corp", "path": "/oidc/corp/callback", "reason": "state_unknown"})
    metrics.observe_event("request_failed", {"idp": "x" * 500, "path": "/login/xxx", "reason": "unknown_idp"})
    metrics.observe_event("request_failed", {"path": "/saml/idp/metadata", "reason": "route_not_found"})
    metrics.observe_event("request_failed", {"path": "/roles/credentials", "reason": "sts_access_denied"})
    text = metrics.render().decode()
    assert 'sts_broker_logins_total{idp="corp",result="ok"} 1.0' in text
    assert 'sts_broker_logins_total{idp="corp",result="state_unknown"} 1.0' in text
    assert 'sts_broker_logins_total{idp="other",result="unknown_idp"} 1.0' in text
    assert 'sts_broker_refusals_total{idp="other",reason="unknown_idp"} 1.0' in text
    assert 'sts_broker_refusals_total{idp="",reason="sts_access_denied"} 1.0' in text
    assert 'sts_broker_logins_total{idp="",' not in text and "x" * 100 not in text
