"""The broker's outbound HTTP client (OIDC discovery and JWKS, SAML metadata, the federation endpoint), its
transport built on first use. httpx builds a client's transport when the client is made (importing httpcore
and h11, loading the CA store: a tenth of a second), and start-up sends no request: broker/warmup.py builds it
in its thread a second after start, or the first request that needs it does. The transport built is the one
`httpx.AsyncClient()` builds by default; proxies from the environment are mounted by the client as before."""

from __future__ import annotations

import threading
import weakref

import httpx

_UNBUILT: weakref.WeakSet[LazyTransport] = weakref.WeakSet()


class LazyTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._built: httpx.AsyncHTTPTransport | None = None
        self._lock = threading.Lock()
        _UNBUILT.add(self)

    def built(self) -> httpx.AsyncHTTPTransport:
        if self._built is None:
            with self._lock:
                if self._built is None:
                    self._built = httpx.AsyncHTTPTransport()
                    _UNBUILT.discard(self)
        return self._built

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.built().handle_async_request(request)

    async def aclose(self) -> None:
        if self._built is not None:
            await self._built.aclose()


def outbound_client(timeout: float = 10.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False, transport=LazyTransport())


def build_transports() -> None:
    """Build every transport not built yet (warmup.py, in its thread)."""
    for transport in list(_UNBUILT):
        transport.built()
