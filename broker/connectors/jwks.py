"""An IdP's signing keys (its JWKS), with bounded trust in time.

Guarantees, per IdP (times on the monotonic clock of this process):
- Withdrawn key: a key set is trusted for at most `max_age` (`jwks_max_age`, default 5 minutes; less
  when the IdP's Cache-Control max-age is shorter, but not under 60 s) counted from the moment the fetch
  that returned it *began*. A key the IdP withdrew at time W is therefore in no set trusted after
  W + max_age: its tokens are refused from then on (signature_invalid), however often they are presented.
- No wait in the steady state: from half its life on, a request that uses the set starts one refresh in
  the background and goes on with the set held; the new set replaces it when it lands. Only a request
  that finds no trusted set (the first one, or after a quiet spell longer than half the life) waits.
- IdP down: the held set keeps serving until its max_age, not beyond (no grace). Then every request is
  refused with 502 and the fetch's reason (idp_timeout, idp_http_error, ...), or `jwks_backoff` while a
  failed fetch is less than `failure_backoff` (5 s) old: an outage costs one fetch per 5 s, not one per
  request.
- New key: a token whose kid the held set lacks may start a fetch at most once per
  `unknown_kid_interval` (`jwks_unknown_kid_interval`, default 5 s), counted from the start of the last
  fetch of any kind. A key published at time P is accepted from P + unknown_kid_interval on, at the
  latest (plus the fetch itself).
- Flood: whatever kids a flood makes up, it costs at most one fetch per interval. A fetch in flight is
  shared (single flight): concurrent requests await the same one, and a request with an unknown kid that
  arrives while any fetch is in flight awaits it rather than starting another.
- A fetch is only ever for the configured or discovered `jwks_uri`, never a URL a token names.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from broker.connectors.fetch import fetch_json
from broker.connectors.oidc_config import OidcIdpConfig
from broker.connectors.token_config import TokenIdpConfig
from broker.errors import UpstreamUnavailable
from broker.telemetry import idp_refresh

_MAX_AGE = re.compile(r"max-age=(\d+)")
MIN_CACHE_CONTROL = 60.0  # an IdP's Cache-Control shorter than this is read as this (no fetch per request)
REFRESH_AT = 0.5  # the fraction of a set's life after which a use refreshes it in the background


def cache_lifetime(headers: httpx.Headers, *, default: float, low: float, high: float) -> float:
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    seconds = float(match.group(1)) if match else default
    return min(max(seconds, low), high)


class JwksCache:
    def __init__(
        self, http: httpx.AsyncClient, uri: str, *, timeout: float, max_bytes: int = 64 * 1024,
        max_age: float = 300.0, unknown_kid_interval: float = 5.0, failure_backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic, idp: str = "",
    ) -> None:
        self.idp = idp  # the /metrics label of its refreshes
        self._http, self.uri, self._timeout, self._max_bytes = http, uri, timeout, max_bytes
        self._max_age, self._unknown_kid_interval = max_age, unknown_kid_interval
        self._failure_backoff, self._clock = failure_backoff, clock
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._expires_at = -1e18  # the held set is trusted before this instant only
        self._refresh_at = -1e18  # from this instant a use starts a background refresh
        self._attempted_at = -1e18  # when the last fetch began (the unknown-kid interval counts from it)
        self._failed_at = -1e18  # when the last fetch failed (the failure backoff counts from it)
        self._flight: asyncio.Task[None] | None = None
        self.fetches = 0  # successful fetches (tests read it)

    def trusted_for(self) -> float:
        """Seconds the held key set stays trusted (0 without one): what verified before must not outlive."""
        return max(0.0, self._expires_at - self._clock()) if self._keys is not None else 0.0

    async def key_set(self, kid: str | None) -> KeySet:
        now = self._clock()
        if self._keys is None or now >= self._expires_at:
            await self._fetch_and_wait(now)
        elif kid is not None and kid not in self._kids:
            await self._fetch_for_unknown_kid(now)
        elif now >= self._refresh_at and self._flight is None and not self._backing_off(now):
            self._start(now)  # in the background: this request goes on with the set it has
        if self._keys is None or self._clock() >= self._expires_at:
            raise UpstreamUnavailable(f"JWKS at {self.uri}: no key set fetched within the maximum age",
                                      reason="jwks_expired")
        return self._keys

    def _backing_off(self, now: float) -> bool:
        return now - self._failed_at < self._failure_backoff

    async def _fetch_and_wait(self, now: float) -> None:
        """No trusted set: wait for a fetch (the one in flight, or a new one); its failure is the refusal."""
        flight = self._flight
        if flight is None:
            if self._backing_off(now):
                raise UpstreamUnavailable(f"JWKS at {self.uri} failed moments ago; not asking again yet",
                                          reason="jwks_backoff")
            flight = self._start(now)
        await asyncio.shield(flight)  # shield: a client that goes away does not cancel others' fetch

    async def _fetch_for_unknown_kid(self, now: float) -> None:
        """A kid the held (still trusted) set lacks: perhaps a new key. Wait for a fetch if one is in flight
        or allowed now; otherwise, or if it fails, the held set judges the token (and refuses it)."""
        flight = self._flight
        if flight is None:
            if now - self._attempted_at < self._unknown_kid_interval or self._backing_off(now):
                return
            flight = self._start(now)
        with contextlib.suppress(UpstreamUnavailable):
            await asyncio.shield(flight)

    def _start(self, now: float) -> asyncio.Task[None]:
        self._attempted_at = now
        flight = asyncio.get_running_loop().create_task(self._fetch(now))
        flight.add_done_callback(_retrieve)
        self._flight = flight
        return flight

    async def _fetch(self, started: float) -> None:
        try:
            keys, lifetime = await self._download()
        except UpstreamUnavailable as exc:
            self._failed_at = self._clock()
            idp_refresh(self.idp, "jwks", exc.reason)
            raise
        finally:
            self._flight = None
        idp_refresh(self.idp, "jwks", "ok")
        self.fetches += 1
        self._keys, self._kids = keys, frozenset(k.kid for k in keys.keys if k.kid)
        # Counted from the start: the set may have been read by the IdP at any moment since then.
        self._expires_at = started + lifetime
        self._refresh_at = started + lifetime * REFRESH_AT

    async def _download(self) -> tuple[KeySet, float]:
        document, headers = await fetch_json(self._http, self.uri, seconds=self._timeout, max_bytes=self._max_bytes)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError, AttributeError):
            raise UpstreamUnavailable(f"JWKS at {self.uri} is not a valid key set", reason="jwks_invalid") from None
        lifetime = cache_lifetime(headers, default=self._max_age, low=MIN_CACHE_CONTROL, high=self._max_age)
        return keys, lifetime


def jwks_for(http: httpx.AsyncClient, uri: str, config: OidcIdpConfig | TokenIdpConfig) -> JwksCache:
    """The key cache for one IdP, timed as its configuration says."""
    return JwksCache(http, uri, timeout=config.timeout.total_seconds(),
                     max_age=config.jwks_max_age.total_seconds(),
                     unknown_kid_interval=config.jwks_unknown_kid_interval.total_seconds(), idp=config.id)


def _retrieve(flight: asyncio.Task[None]) -> None:
    """Mark a fetch's error as seen: a background refresh nobody awaited must not be reported as lost."""
    if not flight.cancelled():
        flight.exception()
