"""The pieces on their own: credential cache (key, reuse window, single flight, sealing), the event-loop
STS client (keep-alive, a dropped connection, error mapping, hostile XML), token IdP configuration."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from broker.config import load_idps
from broker.connectors.token_config import TokenIdpConfig
from broker.devstack.servers import LOOPBACK, free_port
from broker.devstack.stub_sts import running_stub_sts
from broker.errors import ConfigError, StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.cache import CredentialCache, cache_key
from broker.issuers.credentials import Credentials
from broker.issuers.sts_http import HttpStsClient, default_endpoint, parse_answer
from broker.settings import AwsConfig, TokenExchangeConfig
from broker.store import MemoryStore
from broker.web.errors import http_status
from tests.factories import identity

GRANT = RoleGrant(role_arn="arn:aws:iam::111122223333:role/R", via="web_identity", provider_arn=None,
                  session_name="alice", source_identity=None, duration=timedelta(hours=1), tags={"user": "alice"})
SECRET = "a-long-enough-session-secret-for-the-cache-0123456789"


def creds(minutes: float, key: str = "ASIA1") -> Credentials:
    return Credentials(access_key_id=key, secret_access_key="s3cr3t", session_token="tok",
                       expiration=datetime.now(UTC) + timedelta(minutes=minutes), role_arn=GRANT.role_arn,
                       assumed_role_arn="arn:aws:sts::111122223333:assumed-role/R/alice")


def test_cache_key_changes_with_any_scope_field() -> None:
    person = identity()
    base = cache_key(person, GRANT)
    assert cache_key(person, GRANT) == base
    for change in ({"tags": {"user": "bob"}}, {"policy": '{"Version":"2012-10-17"}'}, {"session_name": "x1"},
                   {"duration": timedelta(hours=2)}, {"passthrough": True}, {"policy_arns": ("arn:aws:iam::aws:p",)},
                   {"role_arn": "arn:aws:iam::111122223333:role/Other"}, {"source_identity": "alice"}):
        other = RoleGrant(**{**{f: getattr(GRANT, f) for f in GRANT.__dataclass_fields__}, **change})
        assert cache_key(person, other) != base, change
    assert cache_key(identity(subject="someone-else"), GRANT) != base
    assert cache_key(person, RoleGrant(**{**{f: getattr(GRANT, f) for f in GRANT.__dataclass_fields__},
                                          "rule_id": "another-rule"})) == base


def test_single_flight_reuse_and_sealing() -> None:
    async def run() -> None:
        store = MemoryStore()
        cache = CredentialCache(store, SECRET, min_remaining=timedelta(minutes=10))
        calls = 0

        async def issue() -> Credentials:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return creds(60)

        results = await asyncio.gather(*[cache.get_or_issue("creds:k", issue) for _ in range(20)])
        assert calls == 1 and {r[0].access_key_id for r in results} == {"ASIA1"}
        assert [r[1] for r in results] == [False] * 20  # all got the call made for them, none a stale copy
        assert (await cache.get_or_issue("creds:k", issue))[1] is True and calls == 1
        sealed = await store.get("creds:k")
        assert sealed is not None and "s3cr3t" not in sealed and "ASIA1" not in sealed
        # Another replica (no local copy) opens what this one sealed; another secret cannot.
        assert (await CredentialCache(store, SECRET, min_remaining=timedelta(minutes=10))
                .get_or_issue("creds:k", issue))[1] is True
        stranger = CredentialCache(store, SECRET + "x", min_remaining=timedelta(minutes=10))
        assert (await stranger.get_or_issue("creds:k", issue))[1] is False and calls == 2

    asyncio.run(run())


def test_not_reused_when_no_longer_comfortably_valid() -> None:
    async def run() -> None:
        cache = CredentialCache(MemoryStore(), SECRET, min_remaining=timedelta(minutes=10))
        keys = iter(["A", "B", "C"])

        async def issue() -> Credentials:
            return creds(16, next(keys))  # 16 minutes: reusable for 8 (half its life), not 6 (16 - 10)

        first, _ = await cache.get_or_issue("creds:short", issue)
        assert (await cache.get_or_issue("creds:short", issue))[0].access_key_id == first.access_key_id
        cache._clock = lambda: datetime.now(UTC).timestamp() + 9 * 60
        assert (await cache.get_or_issue("creds:short", issue))[0].access_key_id == "B"

    asyncio.run(run())


def test_failed_calls_are_not_cached() -> None:
    async def run() -> None:
        cache = CredentialCache(MemoryStore(), SECRET, min_remaining=timedelta(minutes=10))

        async def fail() -> Credentials:
            await asyncio.sleep(0.01)
            raise StsUnavailable("down")

        results = await asyncio.gather(*[cache.get_or_issue("creds:f", fail) for _ in range(5)],
                                       return_exceptions=True)
        assert all(isinstance(r, StsUnavailable) for r in results)

        async def works() -> Credentials:
            return creds(60)

        assert (await cache.get_or_issue("creds:f", works))[1] is False

    asyncio.run(run())


def test_http_sts_keeps_connections_and_maps_errors() -> None:
    port = free_port()
    aws = AwsConfig(sts_endpoint_url=f"http://{LOOPBACK}:{port}")

    async def run() -> None:
        client = HttpStsClient(aws, max_connections=4)
        try:
            got = await asyncio.gather(*[client.assume_role_with_web_identity(GRANT, "t.o.k") for _ in range(12)])
            assert len({c.access_key_id for c in got}) == 12 and all(c.expiration.tzinfo for c in got)
            assert len(client._idle) <= 4
            for conn in list(client._idle):
                assert conn.transport is not None  # an idle connection is an open one
                conn.transport.abort()  # the server's side of keep-alive went away
            await asyncio.sleep(0.05)
            assert (await client.assume_role_with_web_identity(GRANT, "t.o.k")).role_arn == GRANT.role_arn
        finally:
            await client.close()

    with running_stub_sts(port, delay=0.01) as stub:
        asyncio.run(run())
        assert stub.calls == 13


def error_xml(code: str, message: str = "m") -> bytes:
    return (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>").encode()


def test_sts_answers_mapped() -> None:
    with pytest.raises(StsRefused) as refused:
        parse_answer(403, error_xml("AccessDenied"), GRANT)
    assert refused.value.reason == "sts_access_denied"
    with pytest.raises(StsUnavailable) as throttled:
        parse_answer(400, error_xml("Throttling"), GRANT)
    assert throttled.value.reason == "sts_throttling"
    with pytest.raises(StsUnavailable):
        parse_answer(500, b"<html>oops</html>", GRANT)
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(StsUnavailable) as hostile:
        parse_answer(200, bomb, GRANT)
    assert hostile.value.reason == "sts_bad_answer"
    ns = b'xmlns="https://sts.amazonaws.com/doc/2011-06-15/"'
    creds_xml = (b"<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
                 b"<SessionToken>T</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>")
    assert parse_answer(200, b"<R " + ns + b"><X>" + creds_xml + b"</X></R>", GRANT).access_key_id == "A"
    for odd in (b"<R " + ns + b">" + creds_xml * 2 + b"</R>",  # two sets: which one?
                b"<R " + ns + b"><Credentials><X>" + creds_xml[13:-14] + b"</X></Credentials></R>"):  # not children
        with pytest.raises(StsUnavailable) as unclear:
            parse_answer(200, odd, GRANT)
        assert unclear.value.reason == "sts_bad_answer"
    assert default_endpoint("cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    assert default_endpoint("eu-west-1") == "https://sts.eu-west-1.amazonaws.com"


def test_token_idp_config(tmp_path: Path) -> None:
    google = TokenIdpConfig.model_validate({"id": "g", "type": "token", "preset": "google", "client_ids": ["x"]})
    assert google.issuers == ["https://accounts.google.com", "accounts.google.com"]
    assert google.jwks_uri == "https://www.googleapis.com/oauth2/v3/certs" and google.name == "Google"
    generic = TokenIdpConfig.model_validate({"id": "k", "type": "token", "issuer": "https://kc.example.com/realms/x",
                                             "client_ids": ["app"]})
    assert generic.issuers == ["https://kc.example.com/realms/x"] and generic.jwks_uri is None
    with pytest.raises(ValidationError):
        TokenIdpConfig.model_validate({"id": "k", "type": "token", "issuer": "http://evil.example.com",
                                       "client_ids": ["app"]})
    with pytest.raises(ValidationError):
        TokenIdpConfig.model_validate({"id": "k", "type": "token", "issuer": "https://a.example", "client_ids": []})
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"id": "a", "type": "saml-ish", "name": "A"}))
    with pytest.raises(ConfigError) as bad:
        load_idps(tmp_path)
    assert "'oidc', 'token'" in str(bad.value.problems)
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"id": "a", "type": "token", "preset": "google",
                                                     "client_ids": ["x"], "client_secret": "nope"}))
    with pytest.raises(ConfigError) as extra:
        load_idps(tmp_path)
    assert "client_secret" in str(extra.value.problems)


@pytest.mark.parametrize("origin", ["*", "null", "https://app.example.com/", "https://App.example.com",
                                    "http://app.example.com", "https://user@app.example.com"])
def test_cors_origins_are_exact(origin: str) -> None:
    with pytest.raises(ValidationError):
        TokenExchangeConfig(cors_origins=[origin])
    assert TokenExchangeConfig(cors_origins=["https://app.example.com", "http://127.0.0.1:5173"])


def test_http_sts_deadlines() -> None:
    port = free_port()

    async def run() -> None:
        slow = HttpStsClient(AwsConfig(sts_endpoint_url=f"http://{LOOPBACK}:{port}",
                                       read_timeout=timedelta(seconds=0.3)))
        with pytest.raises(StsUnavailable) as late:
            await slow.assume_role_with_web_identity(GRANT, "t.o.k")
        assert late.value.reason == "sts_timeout" and http_status(late.value) == 504
        await slow.close()
        busy = HttpStsClient(AwsConfig(sts_endpoint_url=f"http://{LOOPBACK}:{port}",
                                       connect_timeout=timedelta(seconds=0.2)), max_connections=1)
        first, second = await asyncio.gather(busy.assume_role_with_web_identity(GRANT, "t.o.k"),
                                             busy.assume_role_with_web_identity(GRANT, "t.o.k"),
                                             return_exceptions=True)
        assert isinstance(first, Credentials)
        assert isinstance(second, StsUnavailable) and second.reason == "sts_busy"
        await busy.close()

    with running_stub_sts(port, delay=0.6):
        asyncio.run(run())
