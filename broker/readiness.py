"""What /readyz reports: each dependency a replica needs to serve, by name, `ok` or the reason it is not.

- store: a PING of the state store;
- keys: the broker's signing keys are loaded;
- idps: every IdP whose keys or metadata come over the network (OIDC: discovery and JWKS; token IdPs: JWKS;
  SAML with `metadata_url`) holds a usable set, fetched if it holds none (`unchecked` until the first check
  ends). IdPs read from files are ready by construction and not listed.

The store and keys decide readiness. The IdPs do only with `readiness.require_idps`: then /readyz waits for
their check; otherwise it starts one in the background and reports the last results at once (an IdP down
must not slow the probe, nor take every replica out of the load balancer). An IdP is asked through its
connector's own caches and back-off, at most once per IDP_CHECK_TTL whatever the probe rate (a /readyz flood
must not become a flood of fetches at the IdPs), and within IDP_CHECK_SECONDS. Nothing secret or internal is
named: reason codes and configured ids only, never a URL or an address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from broker.errors import BrokerError
from broker.logins.oidc import OidcLogin
from broker.logins.registry import Registry
from broker.logins.saml import SamlLogin
from broker.store import StateStore
from broker.warmup import PRELOAD_AFTER

IDP_CHECK_TTL = 5.0
IDP_CHECK_SECONDS = 2.0
UNCHECKED = "unchecked"
Probe = Callable[[], Awaitable[None]]


def idp_probes(registry: Registry) -> dict[str, Probe]:
    """The IdPs whose readiness depends on a fetch, each with the call that makes sure it holds what it needs."""
    probes: dict[str, Probe] = {}
    for idp, login in registry.logins.items():
        if isinstance(login, OidcLogin):
            probes[idp] = login.connector.ready
        elif isinstance(login, SamlLogin) and login.connector.config.metadata_url is not None:
            probes[idp] = login.connector.metadata.ready
    for idp, connector in registry.tokens.by_id.items():
        probes[idp] = connector.ready
    return probes


class PublishedKeys(Protocol):
    """What readiness asks of the signing keys (a KeyRing, or the LiveKeys that follow a rotation)."""

    def jwks(self) -> dict[str, Any]: ...


class Readiness:
    def __init__(self, store: StateStore, keys: PublishedKeys, probes: Mapping[str, Probe], *,
                 require_idps: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._keys, self._probes, self._clock = store, keys, dict(probes), clock
        self.require_idps = require_idps
        self._idps = dict.fromkeys(self._probes, UNCHECKED)
        # Reported only (no require_idps): the first check waits until the preload has built the outbound
        # client (broker/warmup.py), so the probes at start-up cost no import on the event loop.
        self._idps_at = -1e18 if require_idps else clock() - IDP_CHECK_TTL + PRELOAD_AFTER + 0.5
        self._check: asyncio.Task[None] | None = None

    async def checks(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"store": await self._store_state(),
                                  "keys": "ok" if self._keys.jwks()["keys"] else "missing"}
        if self._probes:
            checks["idps"] = await self._idp_states()
        return checks

    def ready(self, checks: Mapping[str, Any]) -> bool:
        return all(all(v == "ok" for v in value.values()) if isinstance(value, dict) else value == "ok"
                   for name, value in checks.items() if name != "idps" or self.require_idps)

    def close(self) -> None:
        """At shutdown: a check still in flight is cancelled, not left pending."""
        if self._check is not None:
            self._check.cancel()

    async def _store_state(self) -> str:
        try:
            await self._store.ping()
        except BrokerError as exc:
            return exc.reason
        return "ok"

    async def _idp_states(self) -> dict[str, str]:
        if self._check is None and self._clock() - self._idps_at >= IDP_CHECK_TTL:
            self._check = asyncio.get_running_loop().create_task(self._check_idps())
        if self._check is not None and self.require_idps:
            await asyncio.shield(self._check)  # shield: a probe that gives up does not cancel the check
        return dict(self._idps)

    async def _check_idps(self) -> None:
        try:
            names = list(self._probes)
            states = await asyncio.gather(*(self._one(self._probes[name]) for name in names))
            self._idps, self._idps_at = dict(zip(names, states, strict=True)), self._clock()
        finally:
            self._check = None

    @staticmethod
    async def _one(probe: Probe) -> str:
        try:
            async with asyncio.timeout(IDP_CHECK_SECONDS):
                await probe()
        except BrokerError as exc:
            return exc.reason
        except TimeoutError:
            return "idp_timeout"
        except Exception:
            return "idp_check_failed"
        return "ok"
