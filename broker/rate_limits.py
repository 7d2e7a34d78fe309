"""Every rate limit of the broker, counted in the state store (so replicas share them) per fixed window:
login starts and ACS posts per client address, token exchanges per client address and per verified subject,
device code pairs per client address, wrong user codes per person and per client address."""

from __future__ import annotations

import functools
import hashlib

from broker.errors import RateLimited
from broker.settings import RateLimitConfig
from broker.store import StateStore


@functools.lru_cache(maxsize=4096)
def subject_key(idp: str, issuer: str, subject: str) -> str:
    """Hashed (a subject id can be an email address): once per active subject, not once per exchange."""
    who = hashlib.sha256(f"{idp}|{issuer}|{subject}".encode()).hexdigest()[:40]
    return f"rate:token-subject:{who}"


def client_key(scope: str, client: str) -> str:
    return f"rate:{scope}:{client}"


class RateLimits:
    def __init__(self, store: StateStore, limits: RateLimitConfig) -> None:
        self.store, self.limits = store, limits
        self.window = limits.window.total_seconds()

    async def hit(self, scope: str, client: str, limit: int) -> None:
        """Count one request of `client` in `scope`; refused beyond `limit` in the current window."""
        self.check(scope, await self.store.incr(client_key(scope, client), self.window), limit)

    def check(self, scope: str, count: int, limit: int, who: str = "client") -> None:
        """Refuse (429, Retry-After: the window) a count taken in the current window beyond its limit."""
        if count > limit:
            raise RateLimited(f"{scope} rate limit for {who}", retry_after=max(1, int(self.window)))

    async def login_start(self, client: str) -> None:
        await self.hit("login", client, self.limits.login_starts)

    async def acs_post(self, client: str) -> None:
        await self.hit("acs", client, self.limits.acs_posts)

    async def token_client(self, client: str) -> None:
        await self.hit("token", client, self.limits.token_exchange_per_client)

    async def token_client_and_subject(self, client: str, subject: str) -> None:
        """Both counts of a token exchange in one store round trip (`subject`: a `subject_key`)."""
        client_count, subject_count = await self.store.incr_all([client_key("token", client), subject], self.window)
        self.check("token", client_count, self.limits.token_exchange_per_client)
        self.token_subject_count(subject_count)

    def token_subject_count(self, count: int) -> None:
        self.check("token exchange", count, self.limits.token_exchange_per_subject, who="subject")

    async def token_subject(self, subject: str) -> None:
        self.token_subject_count(await self.store.incr(subject, self.window))

    async def token_subject_over(self, subject: str) -> None:
        """Only reads the counter (for a subject not verified yet): refused when one more would go over."""
        count = await self.store.get(subject)
        if count is not None:
            self.token_subject_count(int(count) + 1)

    async def device_authorization(self, client: str) -> None:
        """POST /oauth2/device_authorization per client address."""
        await self.hit("device", client, self.limits.device_authorizations)

    @staticmethod
    def user_code_keys(idp: str, issuer: str, subject: str, client: str) -> list[str]:
        """Wrong user codes are counted per person (hashed: a subject can be an email address) and per address."""
        who = hashlib.sha256(f"{idp}|{issuer}|{subject}".encode()).hexdigest()[:40]
        return [f"rate:user-code-person:{who}", client_key("user-code", client)]

    async def user_code_allowed(self, keys: list[str]) -> None:
        """Read-only: refused (429) once a person or an address has typed `device_code_attempts` wrong codes in
        the window; then not even the right code is looked up, so guessing stops there."""
        limit = self.limits.device_code_attempts
        for key in keys:
            count = await self.store.get(key)
            if count is not None and int(count) >= limit:
                raise RateLimited(f"wrong user codes beyond {limit} ({key.split(':')[1]})",
                                  retry_after=max(1, int(self.window)))

    async def user_code_wrong(self, keys: list[str]) -> None:
        await self.store.incr_all(keys, self.window)
