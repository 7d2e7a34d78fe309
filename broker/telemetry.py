"""Process-wide measurements of the broker's dependencies: STS calls, the credential cache, the state store,
and IdP key and metadata refreshes. The code that talks to a dependency calls these functions; every app's
/metrics (broker/metrics.py) exposes the same process-wide collectors, as a Prometheus client library's
default registry would. No plumbing through constructors: a transport, a cache or a key set records what it
did wherever it was built.

Every label value is bounded: STS API names and store operations come from the code, outcomes are `ok`
or an error reason of the broker's tree (`sts_` codes mapped from AWS's error codes, a closed set), and IdP
ids come from the configuration.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from functools import wraps
from typing import Any, TypeVar, cast

from prometheus_client import Counter, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from broker.errors import BrokerError

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])
STS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0)

STS_CALLS = Counter("sts_broker_sts_calls", "STS calls by API and outcome (ok, or the error reason: sts_access_denied, "
                    "sts_throttling, sts_timeout, sts_unreachable ...)", ["api", "outcome"], registry=None)
STS_SECONDS = Histogram("sts_broker_sts_call_seconds", "STS call latency by API (retries included)", ["api"],
                        buckets=STS_BUCKETS, registry=None)
CACHE_LOOKUPS = Counter("sts_broker_credential_cache_lookups", "Credential cache lookups by result (hit or miss)",
                        ["result"], registry=None)


class Latencies(Collector):
    """A histogram by one label, read when /metrics is scraped: a bisect and two additions under a lock per
    observation (~0.3 us), where prometheus_client's Histogram costs ~1 us, on a path (every store
    operation) whose own CPU cost is 5-11 us."""

    def __init__(self, name: str, documentation: str, label: str, buckets: tuple[float, ...]) -> None:
        self._name, self._documentation, self._label, self._buckets = name, documentation, label, buckets
        self._series: dict[str, tuple[list[int], list[float]]] = {}  # counts per bucket (+Inf last), [sum]
        self._lock = threading.Lock()

    def observe(self, value: str, seconds: float) -> None:
        with self._lock:
            series = self._series.get(value)
            if series is None:
                series = self._series[value] = ([0] * (len(self._buckets) + 1), [0.0])
            series[0][bisect.bisect_left(self._buckets, seconds)] += 1
            series[1][0] += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=[self._label])
        with self._lock:
            snapshot = sorted((value, list(counts), total[0]) for value, (counts, total) in self._series.items())
        for value, counts, total in snapshot:
            bounds = [*(str(b) for b in self._buckets), "+Inf"]
            cumulative = [sum(counts[:i + 1]) for i in range(len(counts))]
            family.add_metric([value], list(zip(bounds, cumulative, strict=True)), total)
        yield family


STORE_SECONDS = Latencies("sts_broker_store_seconds", "State store operation latency by operation", "operation",
                          STORE_BUCKETS)
STORE_ERRORS = Counter("sts_broker_store_errors", "State store operations that failed, by operation and reason",
                       ["operation", "reason"], registry=None)
KEY_REFRESHES = Counter("sts_broker_idp_refreshes", "IdP JWKS and SAML metadata fetches by IdP, kind and outcome",
                        ["idp", "kind", "outcome"], registry=None)
COLLECTORS: tuple[Collector, ...] = (STS_CALLS, STS_SECONDS, CACHE_LOOKUPS, STORE_SECONDS, STORE_ERRORS,
                                     KEY_REFRESHES)

# labels() takes a lock and builds a key on every call; the label values are few and fixed (see above).
_children: dict[tuple[object, ...], Any] = {}


def _child(metric: Counter | Histogram, *values: str) -> Any:
    key = (metric, *values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def outcome_of(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, BrokerError) else type(exc).__name__


def sts_call(api: str, outcome: str, seconds: float) -> None:
    _child(STS_CALLS, api, outcome).inc()
    _child(STS_SECONDS, api).observe(seconds)


def measured_sts(api: str) -> Callable[[F], F]:
    """An STS transport's call, counted by outcome and timed (whatever the transport)."""
    def wrap(call: F) -> F:
        @wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await call(*args, **kwargs)
            except Exception as exc:
                sts_call(api, outcome_of(exc), time.perf_counter() - started)
                raise
            sts_call(api, "ok", time.perf_counter() - started)
            return result
        return cast(F, timed)
    return wrap


def cache_lookup(hit: bool) -> None:
    _child(CACHE_LOOKUPS, "hit" if hit else "miss").inc()


def store_op(operation: str, seconds: float, error: BaseException | None = None) -> None:
    STORE_SECONDS.observe(operation, seconds)
    if error is not None:
        _child(STORE_ERRORS, operation, outcome_of(error)).inc()


def idp_refresh(idp: str, kind: str, outcome: str) -> None:
    """`kind`: jwks or saml_metadata; `outcome`: ok or the refusal reason (idp_timeout, jwks_invalid ...)."""
    _child(KEY_REFRESHES, idp, kind, outcome).inc()
