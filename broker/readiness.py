"""What /readyz reports: each dependency a replica needs to serve, by name, `ok` or the reason it is not.

- store: a PING of the state store;
- keys: the broker's signing keys are loaded;
- idps: every IdP whose keys or metadata come over the network (OIDC: discovery and JWKS; token IdPs: JWKS;
  SAML with `metadata_url`) holds a usable set, fetched now if it holds none. IdPs read from files are
  ready by construction and not listed.

An IdP is asked through its connector's own caches and back-off, at most once per IDP_CHECK_TTL whatever the
probe rate (a /readyz flood must not become a flood of fetches at the IdPs), and within IDP_CHECK_SECONDS.
Nothing secret or internal is named: reason codes and configured ids only, never a URL or an address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.errors import BrokerError
from broker.issuers.signing import KeyRing
from broker.logins.oidc import OidcLogin
from broker.logins.registry import Registry
from broker.logins.saml import SamlLogin
from broker.store import StateStore

IDP_CHECK_TTL = 5.0
IDP_CHECK_SECONDS = 2.0
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


class Readiness:
    def __init__(self, store: StateStore, keys: KeyRing, probes: Mapping[str, Probe],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store, self._keys, self._probes, self._clock = store, keys, dict(probes), clock
        self._idps: dict[str, str] = {}
        self._idps_at = -1e18
        self._lock = asyncio.Lock()

    async def checks(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"store": await self._store_state(),
                                  "keys": "ok" if self._keys.jwks()["keys"] else "missing"}
        if self._probes:
            checks["idps"] = await self._idp_states()
        return checks

    @staticmethod
    def ready(checks: Mapping[str, Any]) -> bool:
        return all(all(v == "ok" for v in value.values()) if isinstance(value, dict) else value == "ok"
                   for value in checks.values())

    async def _store_state(self) -> str:
        try:
            await self._store.ping()
        except BrokerError as exc:
            return exc.reason
        return "ok"

    async def _idp_states(self) -> dict[str, str]:
        async with self._lock:
            if self._clock() - self._idps_at >= IDP_CHECK_TTL:
                names = list(self._probes)
                states = await asyncio.gather(*(self._one(self._probes[name]) for name in names))
                self._idps, self._idps_at = dict(zip(names, states, strict=True)), self._clock()
            return dict(self._idps)

    @staticmethod
    async def _one(probe: Probe) -> str:
        try:
            async with asyncio.timeout(IDP_CHECK_SECONDS):
                await probe()
        except BrokerError as exc:
            return exc.reason
        except TimeoutError:
            return "idp_timeout"
        return "ok"
