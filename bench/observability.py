"""What observability costs per request and per store operation, each beside a baseline in the same run.

    python -m bench.observability

- request id: the RequestId middleware around an app that only answers, against that app alone;
- store timing: MeasuredStore around the in-process store, against the store alone (the Redis store's own CPU
  per operation is 5-11 us, bench.store_redis: the added microseconds are what matters);
- STS timing: a measured_sts call against the same coroutine unmeasured.
Best of interleaved rounds, bounded in calls and time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.store import MemoryStore
from broker.store_measured import MeasuredStore
from broker.telemetry import measured_sts
from broker.web.request_id import RequestId

ROUNDS, CALLS = 5, 50_000


async def _rate(call: Callable[[], Awaitable[Any]]) -> float:
    """Microseconds per call."""
    started = time.perf_counter()
    for _ in range(CALLS):
        await call()
    return (time.perf_counter() - started) / CALLS * 1e6


async def compare(name: str, ours: Callable[[], Awaitable[Any]], base: Callable[[], Awaitable[Any]]) -> None:
    best_ours, best_base = float("inf"), float("inf")
    for _ in range(ROUNDS):
        best_base = min(best_base, await _rate(base))
        best_ours = min(best_ours, await _rate(ours))
    print(f"{name:14} {best_ours:6.2f} us against {best_base:6.2f} us: +{best_ours - best_base:.2f} us")


async def main() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "client": ("127.0.0.1", 1), "headers": [(b"host", b"x")]}
    with_id = RequestId(app)
    await compare("request id", lambda: with_id(dict(scope), receive, send), lambda: app(dict(scope), receive, send))

    store = MemoryStore()
    await store.put("k", "v", 600)
    measured = MeasuredStore(store)
    await compare("store get", lambda: measured.get("k"), lambda: store.get("k"))

    async def call() -> int:
        return 1

    await compare("sts call", measured_sts("AssumeRole")(call), call)


if __name__ == "__main__":
    asyncio.run(main())
