"""CLI sessions: what `sts-broker login` holds after the browser step. Each is bound to one person's Identity
(sealed in the state store, as browser sessions are), never outlives the browser session it came from, and is
revocable by its bearer (RFC 7009) or by the person on the portal (by its public id).

Store layout (every key with a TTL, the session's remaining life):
  cli_session:{sha256(token)}  -> sealed {sid, person, device, created, expires, identity}
  cli_session_id:{sid}         -> sealed {hash, person}: revocation and listing by public id
  cli_sessions_of:{person}     -> set of sids (StateStore.set_add): the portal's list; stale ids are pruned
The token itself is never stored: reading the store gives no usable bearer token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

from broker.errors import BadRequest
from broker.identity import Identity
from broker.identity_codec import identity_from_dict, identity_to_dict
from broker.sealed_records import SealedRecords
from broker.store import StateStore

DEVICE_NAME_MAX = 64
TOKEN_BYTES = 32
MIN_LIFETIME = 1.0  # a browser session with less than this left makes no CLI session


def token_digest(token: str) -> str:
    """The store key of a bearer token: a hash (a 256-bit random token needs no salt or stretching)."""
    return hashlib.sha256(token.encode()).hexdigest()


def person_of(identity: Identity) -> str:
    """People are (issuer, subject); the index key carries a digest, not the subject in clear."""
    return hashlib.sha256(identity.key.encode()).hexdigest()[:32]


def clean_device_name(name: str | None) -> str:
    """A device name as the CLI sends it: optional, at most 64 printable characters (no control or line
    characters). Untrusted text: pages escape it, audit events carry it as a JSON string."""
    if not name:
        return ""
    if len(name) > DEVICE_NAME_MAX or not name.isprintable():
        raise BadRequest(f"device_name of {len(name)} characters, printable={name.isprintable()}",
                         reason="device_name_invalid",
                         public=f"device_name must be at most {DEVICE_NAME_MAX} printable characters.")
    return name


@dataclass(frozen=True, slots=True)
class CliSession:
    session_id: str  # public: listing and revocation on the portal
    identity: Identity = field(repr=False)
    device_name: str
    created_at: float  # epoch seconds
    expires_at: float

    @property
    def person(self) -> str:
        return person_of(self.identity)

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, int(self.expires_at - (time.time() if now is None else now)))


class CliSessions:
    def __init__(self, store: StateStore, secret: str, lifetime: float) -> None:
        self._store, self.lifetime = store, lifetime
        self._records = SealedRecords(store, secret, purpose="sts-broker cli session v1")

    def __repr__(self) -> str:
        return f"CliSessions(lifetime={self.lifetime})"

    async def create(self, identity: Identity, device_name: str, not_after: float) -> tuple[CliSession, str]:
        """A new session and its bearer token (returned once, never stored). `not_after`: the expiry (epoch)
        of the browser session it comes from; the CLI session ends then at the latest."""
        now = time.time()
        expires = min(now + self.lifetime, not_after)
        if expires - now < MIN_LIFETIME:
            raise BadRequest("browser session about to expire", reason="session_expiring",
                             public="Your browser session is about to expire. Sign in again.")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = CliSession(secrets.token_urlsafe(16), identity, clean_device_name(device_name), now, expires)
        digest, ttl = token_digest(token), expires - now
        data = {"sid": session.session_id, "person": session.person, "device": session.device_name,
                "created": now, "expires": expires, "identity": identity_to_dict(identity)}
        await self._records.put(f"cli_session:{digest}", data, ttl)
        await self._records.put(f"cli_session_id:{session.session_id}", {"hash": digest, "person": session.person},
                               ttl)
        await self._store.set_add(f"cli_sessions_of:{session.person}", session.session_id, ttl)
        return session, token

    async def load(self, token: str | None) -> CliSession | None:
        """The live session of a bearer token; None for unknown, revoked, expired or malformed tokens."""
        if not token or len(token) > 256:
            return None
        return await self._by_digest(token_digest(token))

    async def by_id(self, session_id: str) -> CliSession | None:
        """The live session with this public id (container tokens check theirs is still live)."""
        ref = await self._ref(session_id)
        return None if ref is None else await self._by_digest(ref["hash"])

    async def revoke_token(self, token: str | None) -> CliSession | None:
        """RFC 7009: ends the session of this token; None when there was none (nothing to say to the caller)."""
        session = await self.load(token)
        if session is not None:
            await self._delete(session, token_digest(str(token)))
        return session

    async def revoke(self, session_id: str, person: str) -> CliSession | None:
        """The portal's revocation: only `person`'s own session (another person's id is as unknown as a made-up
        one, so nothing can be probed). None when there is no such live session of theirs."""
        ref = await self._ref(session_id)
        if ref is None or not hmac.compare_digest(ref["person"], person):
            return None
        session = await self._by_digest(ref["hash"])
        if session is None:
            await self._store.set_remove(f"cli_sessions_of:{person}", session_id)
            return None
        await self._delete(session, ref["hash"])
        return session

    async def list_for(self, identity: Identity) -> list[CliSession]:
        """The person's live CLI sessions, oldest first; ids of ended sessions are pruned from the index."""
        person = person_of(identity)
        found = await self._records.live_members(f"cli_sessions_of:{person}", self._by_id)
        return sorted(found, key=lambda s: (s.created_at, s.session_id))

    async def _by_id(self, session_id: str) -> CliSession | None:
        ref = await self._ref(session_id)
        return None if ref is None else await self._by_digest(ref["hash"])

    async def _ref(self, session_id: str) -> dict[str, str] | None:
        return await self._records.pointer(f"cli_session_id:{session_id}", session_id)

    async def _by_digest(self, digest: str) -> CliSession | None:
        data = await self._records.get(f"cli_session:{digest}")
        if data is None:
            return None
        try:
            identity = identity_from_dict(data["identity"])
            session = CliSession(str(data["sid"]), identity, str(data["device"]), float(str(data["created"])),
                                 float(str(data["expires"])))
        except (KeyError, ValueError):  # a layout this version did not write: log in again
            return None
        return session if session.expires_at > time.time() else None

    async def _delete(self, session: CliSession, digest: str) -> None:
        await self._store.delete(f"cli_session:{digest}")
        await self._store.delete(f"cli_session_id:{session.session_id}")
        await self._store.set_remove(f"cli_sessions_of:{session.person}", session.session_id)
