"""CPU-heavy XML work (parse, schema, signature check, decryption) off the event loop, bounded.

A few worker threads (anyio's thread pool, at most `threads` at once through a capacity limiter) run it,
so one slow document never holds up /healthz or another person's login; lxml and python-xmlsec release
the GIL while libxml2/xmlsec work. The work waiting or running is capped: past `max_pending`, a post is
refused at once with a 503 (reason xml_busy) instead of queueing without bound. The signature shape check
(saml_signature_shape) runs first inside the same job, so hostile transforms never reach xmlsec at all:
the pool bounds what a genuine-looking document can cost, it is not the defence against transforms.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from broker.errors import ServerBusy

T = TypeVar("T")


class XmlWorkers:
    def __init__(self, threads: int = 2, max_pending: int = 16) -> None:
        self.threads, self.max_pending = threads, max_pending
        self._limiter: anyio.CapacityLimiter | None = None  # made on first use, inside the running loop
        self.pending = 0  # running + waiting; touched only on the event loop thread

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        if self.pending >= self.max_pending:
            raise ServerBusy(f"{self.pending} XML jobs running or waiting (max_pending {self.max_pending})",
                             reason="xml_busy")
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=self._limiter)
        finally:
            self.pending -= 1
