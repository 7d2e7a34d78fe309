"""A key rotation end to end: two replicas on one keys directory, the broker registered in the strict local AWS
as an OIDC provider and a SAML provider; AssumeRoleWithWebIdentity and AssumeRoleWithSAML work before, during
and after, a token the old key signed keeps verifying through the overlap, and each step waits as computed."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.config import load_settings
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import AUDIENCE, DEMO_RULES, SECRET_ENV, saml_trust_policy, trust_policy, write_config
from broker.grants import RoleGrant
from broker.issuers.key_state import read_state
from broker.keys_rotate import publish_wait, retire_wait, rotate
from broker.service import BrokerService
from broker.settings import Settings
from broker.web.app import create_app
from broker.web.context import context_of_app
from tests.factories import identity
from tests.keys.conftest import client

PERSON = identity(idp="dev", subject="alice")


@dataclass
class World:
    aws: LocalAws
    settings: Settings
    config: Path
    replicas: list[BrokerService]
    urls: list[str]
    oidc_role: str
    saml_role: str
    saml_provider: str


@pytest.fixture
def world(aws: LocalAws, tmp_path: Path) -> Iterator[World]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    ports = [free_port(), free_port()]
    url = f"http://{LOOPBACK}:{ports[0]}"
    config = write_config(tmp_path, url, "https://idp.example.com", aws, DEMO_RULES, {},
                          {"key_rotation": {"state_file": "keys/rotation.json", "poll": 0}})
    settings = load_settings(config)
    apps = [create_app(settings), create_app(settings)]
    with asgi_server(apps[0], ports[0]), asgi_server(apps[1], ports[1]):
        iam, name = client(aws, "iam", "us-east-1"), f"rot-{uuid.uuid4().hex[:8]}"
        oidc = iam.create_open_id_connect_provider(Url=url, ClientIDList=[AUDIENCE], ThumbprintList=["0" * 40])
        arn = oidc["OpenIDConnectProviderArn"]
        oidc_role = iam.create_role(RoleName=name + "-oidc", AssumeRolePolicyDocument=trust_policy(
            arn, arn.split(":oidc-provider/", 1)[1]))["Role"]["Arn"]
        metadata = httpx.get(f"{url}/saml/idp/metadata").text
        provider = iam.create_saml_provider(Name=name, SAMLMetadataDocument=metadata)["SAMLProviderArn"]
        saml_role = iam.create_role(RoleName=name + "-saml",
                                    AssumeRolePolicyDocument=saml_trust_policy(provider))["Role"]["Arn"]
        yield World(aws, settings, config, [context_of_app(a).service for a in apps],
                    [url, f"http://{LOOPBACK}:{ports[1]}"], oidc_role, saml_role, provider)


def web_identity_token(world: World, replica: int = 0) -> str:
    grant = RoleGrant(world.oidc_role, "web_identity", None, "alice", None, timedelta(hours=1))
    return world.replicas[replica].web_identity.mint(PERSON, grant)


def assume_web_identity(world: World, token: str) -> str:
    answer = client(world.aws, "sts", "us-east-1").assume_role_with_web_identity(
        RoleArn=world.oidc_role, RoleSessionName="alice", WebIdentityToken=token)
    arn: str = answer["AssumedRoleUser"]["Arn"]
    return arn


def assume_saml(world: World, replica: int = 0) -> str:
    grant = RoleGrant(world.saml_role, "saml", world.saml_provider, "alice", None, timedelta(hours=1))
    assertion = world.replicas[replica].saml_issuer.mint(PERSON, grant)
    answer = client(world.aws, "sts", "us-east-1").assume_role_with_saml(
        RoleArn=world.saml_role, PrincipalArn=world.saml_provider, SAMLAssertion=assertion)
    arn: str = answer["AssumedRoleUser"]["Arn"]
    return arn


def kid_of(token: str) -> str:
    import jwt

    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def published(world: World) -> list[list[str]]:
    """The kids each replica serves in its JWKS (over HTTP)."""
    return [sorted(k["kid"] for k in httpx.get(f"{u}/.well-known/jwks.json").json()["keys"]) for u in world.urls]


def update_saml_provider(world: World) -> None:
    """What the command tells the operator to run: IAM gets the metadata file it wrote."""
    metadata = (world.settings.key_rotation.state_file or Path()).parent / "saml-idp-metadata.xml"
    client(world.aws, "iam", "us-east-1").update_saml_provider(
        SAMLProviderArn=world.saml_provider, SAMLMetadataDocument=metadata.read_text())


def both_flows_work(world: World) -> str:
    token = web_identity_token(world)
    assert assume_web_identity(world, token).endswith("/alice")
    for replica in (0, 1):
        assert assume_saml(world, replica).endswith("/alice")
    return token


def test_rotation_end_to_end(world: World) -> None:
    now = time.time()
    old_token = both_flows_work(world)
    assert kid_of(old_token) == "demo" and published(world) == [["demo"], ["demo"]]

    step = rotate(world.settings, now=now)  # 1. publish
    assert step.status == 0
    state = read_state(world.settings.key_rotation.state_file or Path())
    assert state is not None and state.next is not None and state.active == "demo"
    new = state.next
    assert state.activate_after == pytest.approx(now + publish_wait(world.settings).total_seconds())
    assert published(world) == [sorted(["demo", new])] * 2
    assert kid_of(web_identity_token(world, 1)) == "demo"  # published only: not signing
    assert any("aws iam update-saml-provider" in line for line in step.lines)
    update_saml_provider(world)
    both_flows_work(world)

    early = rotate(world.settings, now=now + 60)  # too early: refused, nothing changes
    assert early.status == 1 and read_state(world.settings.key_rotation.state_file or Path()) == state

    # The publish wait, in the relying party's real time: the strict front refetches a JWKS for an unknown kid
    # at most every 5 s (its JwksCache), as AWS keeps a JWKS for a while; the command's clock is moved instead.
    time.sleep(5.5)
    later = now + publish_wait(world.settings).total_seconds()
    assert rotate(world.settings, now=later).status == 0  # 2. activate
    new_token = both_flows_work(world)
    assert kid_of(new_token) == new and kid_of(web_identity_token(world, 1)) == new
    assert published(world) == [sorted(["demo", new])] * 2
    assert assume_web_identity(world, old_token).endswith("/alice")  # the old key's token, in the overlap

    assert rotate(world.settings, now=later + 1).status == 1  # retire too early
    assert rotate(world.settings, now=later + retire_wait(world.settings).total_seconds()).status == 0  # 3. retire
    assert published(world) == [[new], [new]]
    update_saml_provider(world)
    assert kid_of(both_flows_work(world)) == new
    metadata = httpx.get(f"{world.urls[1]}/saml/idp/metadata").text
    assert metadata.count("<ds:X509Certificate>") == 1


def test_waits_follow_the_cache_lifetimes(world: World) -> None:
    settings = world.settings.model_copy(update={"key_rotation": world.settings.key_rotation.model_copy(
        update={"relying_party_cache": timedelta(hours=2), "clock_skew": timedelta(minutes=1),
                "poll": timedelta(seconds=5)})})
    assert publish_wait(settings) == timedelta(hours=2, seconds=5)
    short = settings.model_copy(update={"key_rotation": settings.key_rotation.model_copy(
        update={"relying_party_cache": timedelta(seconds=10)})})
    assert publish_wait(short) == timedelta(minutes=5, seconds=5)  # never under the JWKS max-age it sends
    assert httpx.get(f"{world.urls[0]}/.well-known/jwks.json").headers["cache-control"] == "public, max-age=300"
    longer = settings.model_copy(update={"issuer": settings.issuer.model_copy(
        update={"token_lifetime": timedelta(minutes=15)})})
    assert retire_wait(settings) == timedelta(minutes=6, seconds=5)  # SAML's 5 min + skew + poll
    assert retire_wait(longer) == timedelta(minutes=16, seconds=5)


def test_rotate_command_without_state_file_says_how(tmp_path: Path, aws: LocalAws) -> None:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    config = write_config(tmp_path, "https://broker.example.com", "https://idp.example.com", aws, DEMO_RULES, {}, {})
    result = subprocess.run([sys.executable, "-m", "broker", "keys", "rotate", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "key_rotation.state_file is not set" in result.stderr


def test_rotate_command_publishes(tmp_path: Path, aws: LocalAws) -> None:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    config = write_config(tmp_path, "https://broker.example.com", "https://idp.example.com", aws, DEMO_RULES, {},
                          {"key_rotation": {"state_file": "keys/rotation.json"}})
    result = subprocess.run([sys.executable, "-m", "broker", "keys", "rotate", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "file://" + str(tmp_path / "keys" / "saml-idp-metadata.xml") in result.stdout
    state: dict[str, Any] = json.loads((tmp_path / "keys" / "rotation.json").read_text())
    assert state["active"] == "demo" and state["next"] and [k["kid"] for k in state["keys"]] == ["demo", state["next"]]
    assert (tmp_path / "keys" / f"{state['next']}.pem").stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, "-m", "broker", "keys", "rotate", "--config", str(config)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "not signing yet" in again.stderr
