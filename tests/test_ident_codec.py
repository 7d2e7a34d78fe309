"""An Identity survives the session store whole: every field, the evidence (the IdP's own token or SAMLResponse,
which pass-through grants forward to STS) and the datetime's UTC offset, through the memory store and a private
redis-server, over arbitrary identities (hypothesis)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.devstack.redis_server import running_redis
from broker.identity import Evidence, Identity
from broker.identity_codec import identity_from_dict, identity_to_dict
from broker.store import MemoryStore, RedisStore, StateStore
from broker.web.sessions import SessionManager

# Any code point JSON can carry, lone surrogates included (an OIDC claim is JSON, and JSON can say "\ud800").
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
OFFSETS = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
ZONES = st.none() | st.just(UTC) | OFFSETS.map(timezone)
EVIDENCE = st.none() | st.builds(Evidence, st.sampled_from(["id_token", "saml_response"]), TEXT)
IDENTITIES = st.builds(
    Identity, idp=TEXT, protocol=st.sampled_from(["oidc", "saml", "token"]), issuer=TEXT, subject=TEXT,
    email=st.none() | TEXT, email_verified=st.none() | st.booleans(), groups=st.lists(TEXT, max_size=5).map(tuple),
    mfa=st.booleans(), claims=st.dictionaries(TEXT, st.lists(TEXT, max_size=4).map(tuple), max_size=6),
    authenticated_at=st.datetimes(timezones=ZONES), evidence=EVIDENCE,
)
EXAMPLES = settings(max_examples=150, deadline=None)


def assert_same(decoded: Identity, original: Identity) -> None:
    assert decoded == original  # every field but evidence (compare=False on the dataclass) ...
    assert decoded.evidence == original.evidence  # ... so evidence on its own
    assert decoded.authenticated_at.tzinfo is None or decoded.authenticated_at.utcoffset() is not None
    assert decoded.authenticated_at.isoformat() == original.authenticated_at.isoformat()  # offset too
    assert [type(v) for v in decoded.claims.values()] == [tuple] * len(decoded.claims)
    assert type(decoded.groups) is tuple


@EXAMPLES
@given(IDENTITIES)
def test_codec_round_trips_through_json(identity: Identity) -> None:
    text = json.dumps(identity_to_dict(identity))
    assert_same(identity_from_dict(json.loads(text)), identity)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module", params=["memory", "redis"])
def manager(request: pytest.FixtureRequest, loop: asyncio.Runner) -> Iterator[SessionManager]:
    """The real SessionManager over each store; Redis is a private redis-server on its own port."""
    if request.param == "memory":
        store: StateStore = MemoryStore()
        yield SessionManager(store, secrets.token_urlsafe(48), 3600)
        return
    with running_redis() as server:
        store = RedisStore(server.url, prefix=f"ident-{secrets.token_hex(4)}:")
        try:
            yield SessionManager(store, secrets.token_urlsafe(48), 3600)
        finally:
            loop.run(store.close())


@EXAMPLES
@given(identity=IDENTITIES)
def test_identity_round_trips_through_the_session_store(manager: SessionManager, loop: asyncio.Runner,
                                                        identity: Identity) -> None:
    session, cookie = loop.run(manager.create(identity, None))
    loaded = loop.run(manager.load(cookie))
    assert loaded is not None and loaded.sid == session.sid
    assert_same(loaded.identity, identity)


def _alice(evidence: Evidence | None = None) -> Identity:
    return Identity(idp="dev", protocol="oidc", issuer="https://idp", subject="alice", email="alice@example.com",
                    email_verified=True, groups=("admins",), mfa=False, claims={}, authenticated_at=datetime.now(UTC),
                    evidence=evidence)


def test_a_session_written_by_the_previous_version_means_sign_in_again(manager: SessionManager,
                                                                       loop: asyncio.Runner) -> None:
    """Before: plain JSON without evidence. Sealed or not, that layout is no session (a new login), not a 500."""
    session, cookie = loop.run(manager.create(_alice(), None))
    old = identity_to_dict(_alice())
    del old["evidence"]
    key, document = f"session:{session.sid}", json.dumps({"identity": old, "csrf": "x"})
    store: StateStore = manager._store  # the store under test, written as the previous version did
    loop.run(store.put(key, document, 60))
    assert loop.run(manager.load(cookie)) is None
    loop.run(store.put(key, manager._sealer.seal(document, key), 60))
    assert loop.run(manager.load(cookie)) is None


def test_the_store_holds_the_session_sealed(manager: SessionManager, loop: asyncio.Runner) -> None:
    """Reading the store (a Redis replica, a backup) without the session secret shows neither the person nor the
    IdP's token; a sealed session moved under another session id, or read with another secret, is no session."""
    token = f"eyJ.s3cr3t-{secrets.token_hex(8)}.sig"
    first, first_cookie = loop.run(manager.create(_alice(Evidence("id_token", token)), None))
    store: StateStore = manager._store
    raw = loop.run(store.get(f"session:{first.sid}"))
    assert raw is not None and "s3cr3t" not in raw and "alice" not in raw and first.csrf_token not in raw
    second, second_cookie = loop.run(manager.create(_alice(), None))
    loop.run(store.put(f"session:{second.sid}", raw, 60))
    assert loop.run(manager.load(second_cookie)) is None
    stranger = SessionManager(store, secrets.token_urlsafe(48), 3600)
    stranger._session_signer = manager._session_signer  # even with a valid cookie, another secret opens nothing
    assert loop.run(stranger.load(first_cookie)) is None
    loaded = loop.run(manager.load(first_cookie))
    assert loaded is not None and loaded.identity.evidence == Evidence("id_token", token)


@pytest.mark.parametrize("change", [
    {"protocol": "ldap"}, {"mfa": "true"}, {"groups": "admins"}, {"claims": {"a": "b"}}, {"claims": {"a": [1]}},
    {"evidence": {"kind": "password", "value": "x"}}, {"evidence": {"kind": "id_token"}}, {"evidence": "tok"},
    {"email_verified": 1}, {"extra": 1},
])
def test_a_document_this_module_did_not_write_is_refused(change: dict[str, Any]) -> None:
    data = identity_to_dict(Identity(idp="dev", protocol="oidc", issuer="i", subject="s", email=None,
                                     email_verified=None, groups=(), mfa=False, claims={},
                                     authenticated_at=datetime.now(UTC),
                                     evidence=Evidence("id_token", "secret-token-value")))
    data.update(change)
    with pytest.raises(ValueError) as info:
        identity_from_dict(data)
    assert "secret-token-value" not in str(info.value)


@given(st.sampled_from(["id_token", "saml_response"]), TEXT)
@settings(max_examples=50, deadline=None)
def test_evidence_never_in_a_repr(kind: Any, text: str) -> None:
    evidence = Evidence(kind, f"s3cr3t-{text}")
    identity = Identity(idp="dev", protocol="saml", issuer="i", subject="s", email=None, email_verified=None,
                        groups=(), mfa=False, claims={}, authenticated_at=datetime.now(UTC), evidence=evidence)
    for shown in (repr(evidence), repr(identity), str(identity)):
        assert "s3cr3t" not in shown
