"""Browser sessions: a signed cookie holding only an opaque id; the data lives in the state store, sealed.

The id is rotated at every login (no fixation) and deleted at logout (revocable server-side).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from broker.identity import Identity
from broker.identity_codec import identity_from_dict, identity_to_dict
from broker.sealing import Sealer
from broker.store import StateStore


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    identity: Identity
    csrf_token: str
    expires_at: float  # epoch seconds: the cookie's signing time + lifetime (a CLI session ends by then too)

    def csrf_ok(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf_token.encode(), str(submitted).encode())


class SessionManager:
    def __init__(self, store: StateStore, secret: str, lifetime: float) -> None:
        self._store, self.lifetime = store, lifetime
        self._session_signer = URLSafeTimedSerializer(secret, salt="sts-broker.session")
        self._login_signer = URLSafeTimedSerializer(secret, salt="sts-broker.login-state")
        # The session holds the IdP's own token or SAMLResponse (pass-through): sealed, so reading the store
        # (a Redis replica, a backup) without the session secret reveals no identity and no upstream token.
        self._sealer = Sealer(secret, purpose="sts-broker session v1")

    def __repr__(self) -> str:
        return f"SessionManager(lifetime={self.lifetime})"

    async def create(self, identity: Identity, previous_cookie: str | None) -> tuple[Session, str]:
        """A fresh session id on every login; the previous session (if any) is revoked."""
        if previous_cookie and (old := self.unsign(previous_cookie)):
            await self._store.delete(f"session:{old}")
        session = Session(secrets.token_urlsafe(32), identity, secrets.token_urlsafe(32), time.time() + self.lifetime)
        data = {"identity": identity_to_dict(identity), "csrf": session.csrf_token}
        key = f"session:{session.sid}"
        await self._store.put(key, self._sealer.seal(json.dumps(data), key), self.lifetime)
        return session, self._session_signer.dumps(session.sid)

    def unsign(self, cookie: str) -> str | None:
        signed = self._unsign(cookie)
        return None if signed is None else signed[0]

    def _unsign(self, cookie: str) -> tuple[str, float] | None:
        """The session id and when the cookie was signed (the login: ids are never re-signed)."""
        try:
            sid, signed_at = self._session_signer.loads(cookie, max_age=int(self.lifetime), return_timestamp=True)
        except BadSignature:
            return None
        return (sid, signed_at.timestamp()) if isinstance(sid, str) else None

    async def load(self, cookie: str | None) -> Session | None:
        signed = self._unsign(cookie) if cookie else None
        if signed is None:
            return None
        sid, signed_at = signed
        key = f"session:{sid}"
        raw = await self._store.get(key)
        opened = None if raw is None else self._sealer.open(raw, key)
        if opened is None:  # none, or not sealed by this secret for this key (an older version's plain JSON)
            return None
        data = json.loads(opened)
        try:
            identity = identity_from_dict(data["identity"])
        except ValueError:  # a layout this version did not write: log in again
            return None
        return Session(sid, identity, data["csrf"], signed_at + self.lifetime)

    async def destroy(self, session: Session) -> None:
        await self._store.delete(f"session:{session.sid}")

    def sign_login_state(self, state: str) -> str:
        return self._login_signer.dumps(state)

    def login_state(self, cookie: str | None, max_age: int) -> str | None:
        if not cookie:
            return None
        try:
            state = self._login_signer.loads(cookie, max_age=max_age)
        except BadSignature:
            return None
        return state if isinstance(state, str) else None
