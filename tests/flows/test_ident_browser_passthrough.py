"""Pass-through grants from a browser session, over real HTTP: a scripted browser signs in at a real IdP (an
OIDC issuer whose tokens PyJWT signs, pysaml2), the session (with the IdP's own ID token or SAMLResponse) lives in
a private redis-server, /roles lists the pass-through grant, and POST /roles/credentials reaches the strict local
AWS with the IdP's token unchanged, or is refused before STS with a reason, an audit event and nothing issued.

The roles here trust the IdPs' own IAM providers and nothing else (not the broker), so credentials for them
can only come from the IdP's own token. (oidc-provider-mock, the demo's OIDC IdP, signs ID tokens without a
`kid`, which AWS's key lookup needs: its tokens cannot be passed through, so the hand-made issuer stands in.)"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from moto.sts.models import sts_backends

from broker.devstack import browser
from broker.devstack.dev_saml_idp import DEMO_SAML_USERS, browser_login
from broker.devstack.redis_server import running_redis
from broker.devstack.stack import SAML_IDP_ID, DevStack, aws_client, run_stack
from tests.flows.conftest import audit_events
from tests.flows.test_refusals import assert_refused, handmade_login
from tests.support.token_issuer import TokenIssuer, running_issuer

ACCOUNT = "404040404040"  # this module's own account in moto's process-wide state
HANDMADE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/HandmadePassthrough"
SAML_ROLE = f"arn:aws:iam::{ACCOUNT}:role/CorpSamlPassthrough"
CORP_PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp-idp"  # the upstream IdP registered in IAM itself
ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
RULES = {"version": 1, "rules": [
    {"id": "handmade-passthrough", "idps": ["handmade"], "grant": [
        {"role": HANDMADE_ROLE, "token": "passthrough", "session_name": "{subject}"}]},
    {"id": "saml-passthrough", "idps": [SAML_IDP_ID], "grant": [
        {"role": SAML_ROLE, "via": "saml", "provider": CORP_PROVIDER, "token": "passthrough",
         "session_name": "passthrough"}]},
]}


def _web_identity_trust(provider_arn: str, audience: str) -> str:
    host = provider_arn.split(":oidc-provider/", 1)[1]
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:aud": audience}}}]})


def _register_idps_in_iam(stack: DevStack, handmade: TokenIssuer) -> None:
    """What pass-through needs in IAM: the upstream IdPs themselves as providers, roles trusting only them."""
    iam = aws_client(stack.aws, "iam")
    arn = iam.create_open_id_connect_provider(Url=handmade.url, ClientIDList=["client-1"],
                                              ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    iam.create_role(RoleName="HandmadePassthrough", AssumeRolePolicyDocument=_web_identity_trust(arn, "client-1"))
    assert stack.saml_idp is not None
    iam.create_saml_provider(Name="corp-idp", SAMLMetadataDocument=stack.saml_idp.metadata_xml())
    iam.create_role(RoleName="CorpSamlPassthrough", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": CORP_PROVIDER},
                                                "Action": "sts:AssumeRoleWithSAML"}]}))


@pytest.fixture(scope="module")
def handmade() -> Iterator[TokenIssuer]:
    with running_issuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, handmade: TokenIssuer) -> Iterator[DevStack]:
    os.environ.setdefault("BROKER_SESSION_SECRET", secrets.token_urlsafe(48))
    workdir = tmp_path_factory.mktemp("ident-passthrough")
    rules = workdir / "ident-rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    idp = {"id": "handmade", "type": "oidc", "name": "Hand-made IdP", "issuer": handmade.url,
           "client_id": "client-1", "client_secret": "handmade-client-secret"}
    with running_redis() as redis, run_stack(workdir, rules=rules, account_id=ACCOUNT, extra_idps={"handmade": idp},
                                             overrides={"store": {"url": redis.url},
                                                        "rate_limits": {"login_starts": 100000}}) as stack:
        assert stack.saml_idp is not None
        # dave's IdP also sends the AWS Role attribute naming the pass-through pair (as an IdP set up for AWS does)
        stack.saml_idp.users = {**DEMO_SAML_USERS, "dave": {
            "email": ["dave@example.com"], "groups": ["developers"], ROLE_ATTRIBUTE: [f"{SAML_ROLE},{CORP_PROVIDER}"]}}
        _register_idps_in_iam(stack, handmade)
        yield stack


def assumed_roles() -> int:
    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


def issued(stack: DevStack, subject: str) -> list[dict[str, Any]]:
    return [e for e in audit_events(stack) if e["event"] == "credentials_issued" and e.get("subject") == subject]


def listed(client: httpx.Client, stack: DevStack) -> tuple[list[str], str]:
    view = browser.roles(client, stack.broker_url)
    return [r["role_arn"] for r in view["roles"]], str(view["csrf_token"])


def test_an_oidc_login_reaches_aws_with_the_idps_own_id_token(stack: DevStack, handmade: TokenIssuer) -> None:
    """Authorization code + PKCE through the broker's OIDC connector; the ID token (PyJWT-signed, with a kid in
    the IdP's JWKS) is kept in the Redis session and handed to AssumeRoleWithWebIdentity as the IdP signed it."""
    subject = f"hm-{secrets.token_hex(4)}"
    with browser.browser() as client:
        assert handmade_login(stack, client, handmade, sub=subject).status_code == 303
        roles, csrf = listed(client, stack)
        assert roles == [HANDMADE_ROLE]
        response = browser.post_role(client, stack.broker_url, "credentials", HANDMADE_ROLE, csrf)
    assert response.status_code == 200, response.text[:300]
    creds = response.json()
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/HandmadePassthrough/{subject}"
    [event] = issued(stack, subject)
    assert (event["role"], event["via"], event["passthrough"]) == (HANDMADE_ROLE, "web_identity", True)
    assert event["access_key_id"] == creds["AccessKeyId"]
    assert handmade.next_id_token not in stack.audit_path.read_text()  # the token itself is never audited


def test_an_expired_id_token_is_refused_before_sts(stack: DevStack, handmade: TokenIssuer) -> None:
    """The login was fine; by the time credentials are asked for, the ID token the session keeps has expired."""
    subject = f"hm-{secrets.token_hex(4)}"
    with browser.browser() as client:
        now = int(time.time())
        response = handmade_login(stack, client, handmade, sub=subject, iat=now, exp=now + 3)
        assert response.status_code == 303, response.text[:300]
        roles, csrf = listed(client, stack)
        assert roles == [HANDMADE_ROLE]  # still offered: the rules have no clock
        time.sleep(max(0.0, now + 3.2 - time.time()))
        before = assumed_roles()
        refused = browser.post_role(client, stack.broker_url, "credentials", HANDMADE_ROLE, csrf)
    assert_refused(stack, refused, 403, "passthrough_expired")
    assert "Sign in again" in refused.json()["message"]
    assert assumed_roles() == before and issued(stack, subject) == []


@pytest.mark.parametrize(("user", "reason"), [
    # alice's assertion carries no AWS Role attribute naming the pair
    ("alice", "passthrough_role_absent"),
    # dave's names the pair, but the broker verified it as its SP: Recipient = the broker's ACS, Audience = the
    # broker's entity id. AWS would refuse it (Recipient), so it is refused before STS.
    ("dave", "passthrough_not_for_aws"),
])
def test_a_saml_pass_through_refused_before_sts(stack: DevStack, user: str, reason: str) -> None:
    with browser.browser() as client:
        assert browser_login(client, stack.broker_url, SAML_IDP_ID, user).status_code == 303
        roles, csrf = listed(client, stack)
        assert roles == [SAML_ROLE]
        before = assumed_roles()
        refused = browser.post_role(client, stack.broker_url, "credentials", SAML_ROLE, csrf)
    assert_refused(stack, refused, 403, reason)
    assert assumed_roles() == before and issued(stack, f"{user}@example.com") == []
