"""RFC 8628 device authorization without HTTP: the CLI asks for a code pair, a person approves the short user
code in a browser they are signed in with, the CLI polls with the long device code and gets a CLI session of
the person who approved.

Store layout (every key with a TTL):
- `device:{digest of the device code}`: the request, sealed (it holds the approver's identity once approved),
  kept for twice the code's life so a late poll is told expired_token rather than invalid_grant;
- `device_user:{user code}`: the digest, for the code's life; taken (GETDEL) by the decision, so a user
  code is approved or denied once;
- `device_poll:{digest}` / `device_slow:{digest}`: the polling gate (RFC 8628 3.5 slow_down).
The device code itself is never stored: a reader of the store cannot redeem an approved request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from broker.audit import AuditLog
from broker.cli_authorize import CLI_CLIENT_ID
from broker.cli_sessions import clean_device_name
from broker.errors import BadRequest, BrokerError, DeviceGrantError, RateLimited, UserCodeInvalid
from broker.identity import Identity
from broker.identity_codec import identity_from_dict, identity_to_dict
from broker.rate_limits import RateLimits
from broker.sealing import Sealer
from broker.settings import DeviceAuthorizationConfig
from broker.store import StateStore

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels (no words), no 0/O 1/I look-alikes (RFC 8628 6.1)
USER_CODE_LENGTH = 8
POLL_SLACK = 0.25  # seconds a well-behaved client's poll may come early (timer and network jitter)
Status = Literal["pending", "approved", "denied"]


@dataclass(frozen=True, slots=True)
class DeviceRequest:
    """What the confirmation page shows and the audit log names (never the codes)."""

    device_id: str  # public id, for the audit log
    client_id: str
    device_name: str  # untrusted, checked by cli_sessions.clean_device_name; "" when none
    client: str  # the address that asked for the code
    requested_at: float
    expires_at: float
    interval: int
    status: Status = "pending"
    approver: dict[str, Any] | None = field(default=None, repr=False)  # identity_to_dict of who approved
    approver_until: float | None = None  # the approver's browser session ends then


@dataclass(frozen=True, slots=True)
class DeviceStart:
    device_code: str = field(repr=False)
    user_code: str
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class Approved:
    """A redeemed request: the CLI session to start is the approver's, for at most `until`."""

    request: DeviceRequest
    identity: Identity
    until: float


def digest(device_code: str) -> str:
    return hashlib.sha256(device_code.encode()).hexdigest()[:48]


def normalize_user_code(typed: str) -> str | None:
    """What a person typed (any case, dashes, spaces) as the stored form, or None if it cannot be a code."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def check_client(client_id: str) -> None:
    """The device flow has one client: `sts-broker login --device` (a public client, no secret)."""
    if client_id != CLI_CLIENT_ID:
        raise BadRequest(f"client_id {client_id[:64]!r}", reason="client_unknown",
                         public=f"Unknown client_id (this broker knows {CLI_CLIENT_ID}).")


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


class DeviceCodes:
    def __init__(self, store: StateStore, secret: str, config: DeviceAuthorizationConfig, limits: RateLimits,
                 audit: AuditLog, clock: Callable[[], float] = time.time) -> None:
        self._store, self._limits, self._audit, self._clock = store, limits, audit, clock
        self._sealer = Sealer(secret, purpose="sts-broker device code v1")
        self.lifetime = config.lifetime.total_seconds()
        self.interval = max(1, int(config.interval.total_seconds()))

    def __repr__(self) -> str:
        return f"DeviceCodes(lifetime={self.lifetime}, interval={self.interval})"

    async def start(self, client_id: str, device_name: str | None, client: str) -> DeviceStart:
        await self._limits.hit("device", client, self._limits.limits.device_authorizations)
        check_client(client_id)
        device_code, now = secrets.token_urlsafe(32), self._clock()
        request = DeviceRequest(secrets.token_urlsafe(9), client_id, clean_device_name(device_name), client, now,
                                now + self.lifetime, self.interval)
        key = digest(device_code)
        for _ in range(8):  # 20^8 codes: a collision with a live one is rare, and retried
            user_code = "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))
            if await self._store.put_new(f"device_user:{user_code}", key, self.lifetime):
                break
        else:
            raise BrokerError("no free user code after 8 tries")
        await self._put(key, request)
        self._audit.event("device_code_issued", device_id=request.device_id, client=client, client_id=client_id,
                          device=request.device_name)
        return DeviceStart(device_code, user_code, int(self.lifetime), self.interval)

    # The browser side: look a user code up (the confirmation page), then decide it once.

    async def lookup(self, typed: str, person: Identity, client: str) -> tuple[str, DeviceRequest]:
        """The pending request a typed user code names, and the code in its stored form. A wrong code counts
        against the person and the client address (UserCodeInvalid; RateLimited beyond the limit)."""
        who = self._attempt_keys(person, client)
        await self._attempts_left(who)
        code = normalize_user_code(typed)
        key = None if code is None else await self._store.get(f"device_user:{code}")
        request = None if key is None else await self._get(key)
        if code is None or request is None or request.status != "pending" or self._clock() >= request.expires_at:
            await self._store.incr_all(who, self._limits.window)
            self._audit.event("device_code_refused", reason=UserCodeInvalid.reason, client=client, idp=person.idp,
                              subject=person.subject)
            raise UserCodeInvalid("no pending request for this user code")
        return code, request

    async def decide(self, typed: str, person: Identity, until: float, approve: bool,
                     client: str) -> DeviceRequest:
        """Approve (bound to `person`, whose browser session ends at `until`) or deny, once per user code."""
        code, request = await self.lookup(typed, person, client)
        key = await self._store.pop(f"device_user:{code}")
        if key is None:  # another decision took it between the lookup and here
            raise UserCodeInvalid("user code decided concurrently")
        decided = replace(request, status="approved" if approve else "denied",
                          approver=identity_to_dict(person) if approve else None, approver_until=until)
        await self._put(key, decided)
        self._audit.event("device_code_approved" if approve else "device_code_denied", device_id=request.device_id,
                          idp=person.idp, subject=person.subject, client=client, requested_by=request.client,
                          device=request.device_name)
        return decided

    # The CLI side: poll with the device code.

    async def poll(self, device_code: str, client_id: str) -> Approved:
        """The approved request, once; else DeviceGrantError with the RFC 8628 reason."""
        check_client(client_id)
        if not device_code or len(device_code) > 256:
            raise BadRequest("device_code missing or too long", reason="device_code_missing",
                             public="The device_code parameter is required.")
        key = digest(device_code)
        request = await self._get(key)
        if request is None or request.client_id != client_id:
            raise DeviceGrantError("unknown device code, or another client's")
        if request.status == "denied":
            raise DeviceGrantError("denied by the person", reason="access_denied",
                                   public="The request was denied.")
        if self._clock() >= request.expires_at:
            raise DeviceGrantError("device code expired", reason="expired_token",
                                   public="The device code has expired. Start the login again.")
        if request.status == "pending":
            await self._gate(key, request)
            raise DeviceGrantError("not approved yet", reason="authorization_pending",
                                   public="The request has not been approved yet.")
        return await self._redeem(key)

    async def _redeem(self, key: str) -> Approved:
        raw = await self._store.pop(f"device:{key}")  # GETDEL: of concurrent polls exactly one gets it
        request = None if raw is None else self._open(key, raw)
        if request is None or request.status != "approved" or request.approver is None:
            raise DeviceGrantError("device code already redeemed")
        return Approved(request, identity_from_dict(request.approver), request.approver_until or self._clock())

    async def _gate(self, key: str, request: DeviceRequest) -> None:
        """RFC 8628 3.5: a poll sooner than the interval is slow_down, and each one adds 5 s to it."""
        slowed = int(await self._store.get(f"device_slow:{key}") or 0)
        wait = request.interval + 5 * slowed
        if not await self._store.put_new(f"device_poll:{key}", "1", max(0.5, wait - POLL_SLACK)):
            await self._store.incr(f"device_slow:{key}", 2 * self.lifetime)
            raise DeviceGrantError("polled faster than the interval", reason="slow_down",
                                   public=f"Polling too fast: wait {wait + 5} seconds between requests.")

    @staticmethod
    def _attempt_keys(person: Identity, client: str) -> list[str]:
        """Wrong codes are counted per person (hashed: a subject can be an email address) and per address."""
        who = hashlib.sha256(f"{person.idp}|{person.issuer}|{person.subject}".encode()).hexdigest()[:40]
        return [f"rate:device-code-person:{who}", f"rate:device-code-client:{client}"]

    async def _attempts_left(self, keys: list[str]) -> None:
        limit = self._limits.limits.device_code_attempts
        for key in keys:
            count = await self._store.get(key)
            if count is not None and int(count) >= limit:
                raise RateLimited(f"wrong user codes beyond {limit} for {key.split(':')[1]}",
                                  retry_after=max(1, int(self._limits.window)))

    async def _put(self, key: str, request: DeviceRequest) -> None:
        ttl = request.expires_at + self.lifetime - self._clock()  # kept past expiry: expired_token, not unknown
        await self._store.put(f"device:{key}", self._sealer.seal(json.dumps(asdict(request)), f"device:{key}"),
                              max(1.0, ttl))

    async def _get(self, key: str) -> DeviceRequest | None:
        raw = await self._store.get(f"device:{key}")
        return None if raw is None else self._open(key, raw)

    def _open(self, key: str, raw: str) -> DeviceRequest | None:
        opened = self._sealer.open(raw, f"device:{key}")
        if opened is None:
            return None
        try:
            return DeviceRequest(**json.loads(opened))
        except (TypeError, ValueError):
            return None
