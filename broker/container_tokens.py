"""Container credential tokens: what AWS_CONTAINER_AUTHORIZATION_TOKEN carries for
AWS_CONTAINER_CREDENTIALS_FULL_URI = {public_url}/container-credentials. Each is one person's, for one role,
bound to the CLI session that made it: it works while that session lives and until it is revoked.

Store layout (every key with a TTL, the CLI session's remaining life at creation):
  container:{sha256(token)}  -> sealed {id, sid, person, role, device, created, expires}
  container_id:{id}          -> sealed {hash, person}: revocation and listing by public id
  containers_of:{person}     -> set of ids (the portal's list; stale ids are pruned)
The token itself is never stored.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import asdict, dataclass

from broker.cli_sessions import CliSession, token_digest
from broker.sealed_records import SealedRecords
from broker.store import StateStore

TOKEN_BYTES = 32
MAX_TOKEN = 256  # longer is not one of ours: refused before hashing


@dataclass(frozen=True, slots=True)
class ContainerToken:
    token_id: str  # public: listing and revocation
    session_id: str  # the CLI session it is bound to
    person: str  # cli_sessions.person_of
    role_arn: str
    device_name: str
    created_at: float
    expires_at: float


class ContainerTokens:
    def __init__(self, store: StateStore, secret: str) -> None:
        self._store = store
        self._records = SealedRecords(store, secret, purpose="sts-broker container token v1")

    def __repr__(self) -> str:
        return "ContainerTokens()"

    async def create(self, session: CliSession, role_arn: str) -> tuple[ContainerToken, str]:
        """A token for `role_arn` (already checked as granted), living as long as the CLI session at most."""
        now, token = time.time(), secrets.token_urlsafe(TOKEN_BYTES)
        record = ContainerToken(secrets.token_urlsafe(16), session.session_id, session.person, role_arn,
                                session.device_name, now, session.expires_at)
        digest, ttl = token_digest(token), max(1.0, session.expires_at - now)
        await self._records.put(f"container:{digest}", asdict(record), ttl)
        await self._records.put(f"container_id:{record.token_id}", {"hash": digest, "person": record.person}, ttl)
        await self._store.set_add(f"containers_of:{record.person}", record.token_id, ttl)
        return record, token

    async def load(self, token: str) -> ContainerToken | None:
        """The live token record; None for unknown, revoked, expired or malformed tokens."""
        if not token or len(token) > MAX_TOKEN:
            return None
        return await self._by_digest(token_digest(token))

    async def revoke(self, token_id: str, person: str) -> ContainerToken | None:
        """Only `person`'s own token (another person's id is as unknown as a made-up one)."""
        ref = await self._ref(token_id)
        if ref is None or not hmac.compare_digest(ref["person"], person):
            return None
        record = await self._by_digest(ref["hash"])
        await self._delete(token_id, ref["hash"], person)
        return record

    async def revoke_session(self, session_id: str, person: str) -> list[ContainerToken]:
        """Every token of one CLI session (it ended: they stop working anyway, this clears the list)."""
        ended = [t for t in await self.list_for(person) if t.session_id == session_id]
        for record in ended:
            await self.revoke(record.token_id, person)
        return ended

    async def list_for(self, person: str) -> list[ContainerToken]:
        found = await self._records.live_members(f"containers_of:{person}", self._by_id)
        return sorted(found, key=lambda t: (t.created_at, t.token_id))

    async def _delete(self, token_id: str, digest: str, person: str) -> None:
        await self._store.delete(f"container:{digest}")
        await self._store.delete(f"container_id:{token_id}")
        await self._store.set_remove(f"containers_of:{person}", token_id)

    async def _by_id(self, token_id: str) -> ContainerToken | None:
        ref = await self._ref(token_id)
        return None if ref is None else await self._by_digest(ref["hash"])

    async def _ref(self, token_id: str) -> dict[str, str] | None:
        return await self._records.pointer(f"container_id:{token_id}", token_id)

    async def _by_digest(self, digest: str) -> ContainerToken | None:
        data = await self._records.get(f"container:{digest}")
        try:
            record = None if data is None else ContainerToken(**data)  # type: ignore[arg-type]
        except TypeError:  # a layout this version did not write
            return None
        return record if record is not None and record.expires_at > time.time() else None
