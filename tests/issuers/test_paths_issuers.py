"""The AssumeRole and GetFederationToken issuers' own decisions, made before any STS call: the broker's own
credentials found through botocore's chain (a shared credentials file and profile, as a deployment writes
them), temporary ones refused where AWS would refuse them, and what the outputs say about the result."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.errors import BrokerError
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.assume_role import AssumeRoleIssuer
from broker.issuers.credentials import CallerKeys, Credentials
from broker.issuers.federation_token import FederationTokenIssuer
from broker.issuers.own_credentials import OwnCredentials
from broker.outputs.console import session_duration
from broker.outputs.formats import as_credential_process, as_env, as_ini, as_json
from tests.factories import identity

ROLE = "arn:aws:iam::111122223333:role/R"
POLICY = '{"Statement":[]}'


class NoSts:
    """Any STS call here is a test failure: these refusals happen before one."""

    async def assume_role(self, grant: RoleGrant, caller: CallerKeys, *, source_identity: str | None) -> Credentials:
        raise AssertionError("AssumeRole was called")

    async def get_federation_token(self, grant: RoleGrant, caller: CallerKeys) -> Credentials:
        raise AssertionError("GetFederationToken was called")


class NoHubs:
    async def hub_session(self, identity: Identity, hub: RoleGrant, target: RoleGrant) -> Credentials:
        raise AssertionError("a hub session was asked for")


def credentials_file(tmp_path: Path, token: str | None) -> OwnCredentials:
    path = tmp_path / "credentials"
    lines = ["[broker]", "aws_access_key_id = AKIAEXAMPLEBROKER", "aws_secret_access_key = broker-secret"]
    path.write_text("\n".join(lines + ([f"aws_session_token = {token}"] if token else [])) + "\n")
    return OwnCredentials(profile="broker", credentials_file=path)


def refusal(issuer: AssumeRoleIssuer | FederationTokenIssuer, grant: RoleGrant) -> BrokerError:
    async def run() -> BrokerError:
        try:
            await issuer.issue(identity(), grant)
        except BrokerError as exc:
            return exc
        raise AssertionError("issued")
    return asyncio.run(run())


def test_the_chain_reads_a_profile_from_a_shared_credentials_file(tmp_path: Path) -> None:
    keys = asyncio.run(credentials_file(tmp_path, None).current())
    assert (keys.access_key_id, keys.temporary) == ("AKIAEXAMPLEBROKER", False)
    assert "broker-secret" not in repr(keys)


def test_no_credentials_of_its_own(tmp_path: Path) -> None:
    own = OwnCredentials(profile="absent", credentials_file=tmp_path / "credentials")
    grant = RoleGrant(ROLE, "assume_role", None, "alice", None, timedelta(hours=1))
    error = refusal(AssumeRoleIssuer(NoSts(), own, NoHubs()), grant)
    assert error.reason == "broker_credentials_missing" and "no AWS credentials of its own" in error.public_message


def test_temporary_broker_credentials_cap_assume_role_at_an_hour(tmp_path: Path) -> None:
    own = credentials_file(tmp_path, "a-session-token")
    grant = RoleGrant(ROLE, "assume_role", None, "alice", None, timedelta(hours=2))
    error = refusal(AssumeRoleIssuer(NoSts(), own, NoHubs()), grant)
    assert error.reason == "chain_duration" and "1 hour" in error.public_message


def test_temporary_broker_credentials_get_no_federation_token(tmp_path: Path) -> None:
    grant = RoleGrant(ROLE, "federation_token", None, "alice", None, timedelta(hours=2), policy=POLICY)
    error = refusal(FederationTokenIssuer(NoSts(), credentials_file(tmp_path, "a-session-token")), grant)
    assert error.reason == "federation_needs_iam_user" and "long-term keys" in error.public_message


def test_a_chain_without_its_hub_asks_for_nothing() -> None:
    grant = RoleGrant(ROLE, "assume_role", None, "alice", None, timedelta(hours=1),
                      chain_from="arn:aws:iam::999988887777:role/Hub")
    error = refusal(AssumeRoleIssuer(NoSts(), OwnCredentials(), NoHubs()), grant)
    assert error.reason == "chain_source_not_granted" and "hub role Hub" in error.public_message


def creds(via: str, chained: bool = False) -> Credentials:
    return Credentials("ASIAEXAMPLE", "secret", "token", datetime(2030, 1, 1, tzinfo=UTC), ROLE,
                       "arn:aws:sts::111122223333:federated-user/alice", via=via, chained=chained)


@pytest.mark.parametrize(("via", "chained", "hours", "expected"), [
    ("web_identity", False, 8, "28800"),
    ("assume_role", True, 8, "3600"),  # never above 1 h for a chain's console
    ("assume_role", False, 8, "28800"),
    ("federation_token", False, 24, None),  # never sent for a federation token
])
def test_console_session_duration(via: str, chained: bool, hours: int, expected: str | None) -> None:
    grant = RoleGrant(ROLE, "web_identity", None, "alice", None, timedelta(hours=hours))
    assert session_duration(creds(via, chained), grant) == expected


def test_federation_token_credentials_say_what_they_cannot_do() -> None:
    federated, assumed = creds("federation_token"), creds("assume_role")
    assert "cannot call IAM" in json.loads(as_json(federated))["Note"] and "Note" not in json.loads(as_json(assumed))
    assert as_env(federated).startswith("# Federation-token credentials") and as_env(assumed).startswith("export")
    assert as_ini(federated, "p").startswith("# Federation-token") and as_ini(assumed, "p").startswith("[p]")
    assert "Note" not in json.loads(as_credential_process(federated))  # SDKs read that format exactly


class CountingHub:
    """A hub issuer that takes a while, so concurrent chains overlap on it."""

    def __init__(self) -> None:
        self.calls = 0

    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials:
        self.calls += 1
        await asyncio.sleep(0.05)
        return Credentials(f"ASIAHUB{self.calls}", "hub-secret", "hub-token", datetime.now(UTC) + timedelta(hours=1),
                           grant.role_arn, f"{grant.role_arn}/session", via=grant.via)


class SignedBy:
    """Records which keys signed each AssumeRole."""

    def __init__(self) -> None:
        self.callers: list[str] = []

    async def assume_role(self, grant: RoleGrant, caller: CallerKeys, *, source_identity: str | None) -> Credentials:
        self.callers.append(caller.access_key_id)
        return Credentials("ASIASPOKE", "s", "t", datetime.now(UTC) + timedelta(hours=1), grant.role_arn, "",
                           via=grant.via, chained=caller.temporary, caller_key_id=caller.access_key_id)


def test_concurrent_chains_share_one_hub_session(tmp_path: Path) -> None:
    from broker.audit import AuditLog
    from broker.issuance import Issuance
    from broker.issuers.cache import CredentialCache
    from broker.store import MemoryStore

    hub = RoleGrant("arn:aws:iam::111122223333:role/Hub", "web_identity", None, "alice", None, timedelta(hours=1))
    spokes = [RoleGrant(f"arn:aws:iam::44445555666{i}:role/S", "assume_role", None, "alice", None,
                        timedelta(hours=1), chain_from=hub.role_arn, hub=hub) for i in range(5)]
    counting, signed = CountingHub(), SignedBy()

    async def run() -> list[Credentials]:
        cache = CredentialCache(MemoryStore(), "x" * 48, min_remaining=timedelta(minutes=5))
        issuance = Issuance(signed, {"web_identity": counting}, cache,  # type: ignore[arg-type]
                            AuditLog(str(tmp_path / "audit.log")))
        issuance.add("assume_role", AssumeRoleIssuer(signed, OwnCredentials(), issuance))
        return await asyncio.gather(*(issuance.issue(identity(), s) for s in spokes * 2))

    results = asyncio.run(run())
    assert counting.calls == 1 and signed.callers == ["ASIAHUB1"] * 10  # one hub call, single flight
    assert all(r.chained and r.caller_key_id == "ASIAHUB1" for r in results)
    hops = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert sum(e["event"] == "hub_session_issued" for e in hops) == 10  # each chain audits its first hop
    assert sum(e["event"] == "credentials_issued" and e["hub_role"] == hub.role_arn for e in hops) == 10
