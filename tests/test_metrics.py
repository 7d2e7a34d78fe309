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
