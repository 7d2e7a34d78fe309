"""SAML pass-through from a browser session, over real HTTP: the upstream IdP (pysaml2) is registered in IAM itself
(its "AWS" app), that app's Single sign-on URL is the broker's ACS while its Recipient and Audience stay AWS's, and
the IdP's config at the broker says `aws_passthrough`. A person signs in, /roles lists the pass-through grant, and
POST /roles/credentials hands the IdP's own SAMLResponse, unchanged, to the strict local AWS, which verifies the
IdP's signature against the IdP's metadata in IAM. The role trusts that IAM provider only, never the broker.

Refused for real: the same app's response at an IdP config without the option; a Recipient or Audience outside the
allowed set; the same response posted again; an assertion encrypted to the broker (AWS cannot read it)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import yaml
from moto.sts.models import sts_backends

from broker.devstack import browser
from broker.devstack.dev_saml_idp import (
    DEMO_SAML_USERS,
    AwsApp,
    DevSamlIdp,
    idp_login_page,
    read_forms,
    saml_idp_config,
    submit,
    write_key_and_cert,
)
from broker.devstack.redis_server import running_redis
from broker.devstack.stack import SAML_IDP_ID, SAML_POST_IDP_ID, DevStack, aws_client, run_stack
from tests.flows.conftest import audit_events
from tests.flows.test_refusals import assert_refused

ACCOUNT = "414141414141"  # this module's own account in moto's process-wide state
AWS_IDP = "corpaws"  # the pysaml2 IdP again, with aws_passthrough (SAML_IDP_ID is the same IdP without it)
SAML_ROLE = f"arn:aws:iam::{ACCOUNT}:role/CorpAwsApp"
CORP_PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/corp-aws-app"
ATTR = "https://aws.amazon.com/SAML/Attributes/"
USER, SUBJECT = "erin", "erin@example.com"
RULES = {"version": 1, "rules": [
    {"id": "aws-app-passthrough", "idps": [AWS_IDP, SAML_IDP_ID], "grant": [
        {"role": SAML_ROLE, "via": "saml", "provider": CORP_PROVIDER, "token": "passthrough",
         "session_name": "passthrough"}]},
]}


def _aws_idp_config(workdir: Path) -> dict[str, object]:
    """The IdP from the metadata file the stack writes; its responses may be its AWS app's (aws_passthrough).
    IdP-initiated logins on (an AWS app tile is IdP-initiated), and SP keys, so the IdP can encrypt to the SP."""
    inline = saml_idp_config(AWS_IDP, "", "")
    key, cert = write_key_and_cert(workdir / "sp", "sp", "sts-broker-sp")
    return {**{k: v for k, v in inline.items() if k not in {"entity_id", "sso_url", "certificates"}},
            "name": "Corp IdP, AWS app", "metadata_file": str(workdir / "saml-idp" / "metadata.xml"),
            "aws_passthrough": True, "allow_idp_initiated": True,
            "sp_keys": {"key_file": str(key), "cert_file": str(cert)}}


def _register_in_iam(stack: DevStack, idp: DevSamlIdp) -> None:
    """The IdP's own metadata as an IAM SAML provider, and a role trusting only it (for AWS's sign-in audience)."""
    iam = aws_client(stack.aws, "iam")
    iam.create_saml_provider(Name="corp-aws-app", SAMLMetadataDocument=idp.metadata_xml())
    iam.create_role(RoleName="CorpAwsApp", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": CORP_PROVIDER}, "Action": "sts:AssumeRoleWithSAML",
            "Condition": {"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}}}]}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    os.environ.setdefault("BROKER_SESSION_SECRET", secrets.token_urlsafe(48))
    workdir = tmp_path_factory.mktemp("saml-aws-app")
    rules = workdir / "aws-app-rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    with running_redis() as redis, run_stack(workdir, rules=rules, account_id=ACCOUNT,
                                             extra_idps={AWS_IDP: _aws_idp_config(workdir)},
                                             overrides={"store": {"url": redis.url},
                                                        "rate_limits": {"login_starts": 100000}}) as stack:
        idp = stack.saml_idp
        assert idp is not None
        # The IdP knows the broker's SPs by their metadata, as served (the AWS-app config's too).
        idp.trust_sp([httpx.get(f"{stack.broker_url}/saml/{name}/metadata").text
                      for name in (SAML_IDP_ID, SAML_POST_IDP_ID, AWS_IDP)])
        idp.users = {**DEMO_SAML_USERS, USER: {"email": [SUBJECT], "groups": ["developers"],
                                               f"{ATTR}Role": [f"{SAML_ROLE},{CORP_PROVIDER}"],
                                               f"{ATTR}RoleSessionName": [SUBJECT]}}
        _register_in_iam(stack, idp)
        yield stack


@pytest.fixture
def idp(stack: DevStack) -> Iterator[DevSamlIdp]:
    assert stack.saml_idp is not None
    yield stack.saml_idp
    stack.saml_idp.aws_apps.clear()


def sp_entity(stack: DevStack, idp_id: str) -> str:
    return f"{stack.broker_url}/saml/{idp_id}/metadata"


def acs(stack: DevStack, idp_id: str) -> str:
    return f"{stack.broker_url}/saml/{idp_id}/acs"


def sign_in(client: httpx.Client, stack: DevStack, idp_id: str) -> tuple[str, httpx.Response]:
    """The browser's way in: /login -> the IdP's form -> sign in -> the IdP's page posting to its SSO URL.
    Returns the SAMLResponse the IdP handed the browser, and the ACS's answer to it."""
    answer = submit(client, idp_login_page(client, stack.broker_url, idp_id), username=USER)
    assert answer.status_code == 200, answer.text[:300]
    [form] = read_forms(answer.text)
    assert urljoin(str(answer.url), form.action) == acs(stack, idp_id)
    posted = client.post(acs(stack, idp_id), data=form.fields, headers={"Accept": "application/json"})
    return form.fields["SAMLResponse"], posted


def assumed_roles() -> int:
    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


def issued(stack: DevStack) -> list[dict[str, object]]:
    return [e for e in audit_events(stack) if e["event"] == "credentials_issued" and e.get("subject") == SUBJECT]


def listed(client: httpx.Client, stack: DevStack) -> tuple[list[str], str]:
    view = browser.roles(client, stack.broker_url)
    return [r["role_arn"] for r in view["roles"]], str(view["csrf_token"])


def shape(stack: DevStack, name: str) -> AwsApp:
    return {
        # Okta: "Single sign-on URL" = the broker's ACS, "Recipient URL" = AWS's sign-in, Audience AWS's.
        "recipient_and_audience_aws": AwsApp(),
        # one AudienceRestriction naming AWS and the broker (either is enough for its consumer)
        "audiences_aws_and_broker": AwsApp(audiences=("urn:amazon:webservices", sp_entity(stack, AWS_IDP))),
        # no Destination on the (unsigned) Response, as SAML allows
        "no_destination": AwsApp(destination=False),
    }[name]


@pytest.mark.parametrize("app", ["recipient_and_audience_aws", "audiences_aws_and_broker", "no_destination"])
def test_the_idps_own_response_reaches_aws_and_works(stack: DevStack, idp: DevSamlIdp, app: str) -> None:
    idp.aws_apps[sp_entity(stack, AWS_IDP)] = shape(stack, app)
    before = len(issued(stack))
    with browser.browser() as client:
        saml_response, landed = sign_in(client, stack, AWS_IDP)
        assert landed.status_code == 303, landed.text[:300]
        roles, csrf = listed(client, stack)
        assert roles == [SAML_ROLE]
        response = browser.post_role(client, stack.broker_url, "credentials", SAML_ROLE, csrf)
    assert response.status_code == 200, response.text[:300]
    # What the strict local AWS accepted is byte for byte what the IdP gave the browser.
    assert hashlib.sha256(saml_response.encode()).hexdigest() in stack.aws.saml_accepted()
    creds = response.json()
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/CorpAwsApp/{SUBJECT}"
    event = issued(stack)[before]
    assert (event["role"], event["via"], event["passthrough"]) == (SAML_ROLE, "saml", True)
    assert event["access_key_id"] == creds["AccessKeyId"]
    assert saml_response not in stack.audit_path.read_text()  # the assertion itself is never audited


def test_the_same_app_response_without_the_option_is_refused(stack: DevStack, idp: DevSamlIdp) -> None:
    """SAML_IDP_ID is the same IdP without aws_passthrough: its ACS refuses what AWS's app sends."""
    idp.aws_apps[sp_entity(stack, SAML_IDP_ID)] = AwsApp()
    with browser.browser() as client:
        _, refused = sign_in(client, stack, SAML_IDP_ID)
        assert_refused(stack, refused, 401, "saml_for_aws")
        assert client.get(f"{stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401


@pytest.mark.parametrize(("app", "reason"), [
    (AwsApp(audiences=("urn:amazon:webservices:govcloud",)), "saml_audience"),  # AWS, but another partition
    (AwsApp(audiences=("https://other-sp.example/metadata",)), "saml_audience"),  # another SP of the IdP
    (AwsApp(recipient="https://signin.amazonaws-us-gov.com/saml"), "saml_recipient"),
    (AwsApp(recipient="https://eu-west-1.signin.aws.amazon.com/saml"), "saml_recipient"),  # not in the config
    (AwsApp(recipient="https://evil.example/saml"), "saml_recipient"),
])
def test_a_recipient_or_audience_outside_the_allowed_set_is_refused(stack: DevStack, idp: DevSamlIdp, app: AwsApp,
                                                                    reason: str) -> None:
    idp.aws_apps[sp_entity(stack, AWS_IDP)] = app
    with browser.browser() as client:
        _, refused = sign_in(client, stack, AWS_IDP)
        assert_refused(stack, refused, 401, reason)
        assert client.get(f"{stack.broker_url}/roles", headers={"Accept": "application/json"}).status_code == 401


def test_a_replayed_response_is_refused(stack: DevStack, idp: DevSamlIdp) -> None:
    """SP-initiated: the request it answers is used up (the same browser, or another). IdP-initiated (the AWS
    tile): the assertion ID is single use."""
    idp.aws_apps[sp_entity(stack, AWS_IDP)] = AwsApp()
    with browser.browser() as client, browser.browser() as other:
        saml_response, landed = sign_in(client, stack, AWS_IDP)
        assert landed.status_code == 303
        for replayer in (client, other):
            again = replayer.post(acs(stack, AWS_IDP), data={"SAMLResponse": saml_response},
                                  headers={"Accept": "application/json"})
            assert_refused(stack, again, 400, "saml_request_not_bound")
    unsolicited = idp.aws_app_response(AwsApp(), USER, in_response_to=None, destination=acs(stack, AWS_IDP),
                                       sp_entity_id=sp_entity(stack, AWS_IDP))
    form = {"SAMLResponse": base64.b64encode(unsolicited.encode()).decode()}
    with browser.browser() as client, browser.browser() as other:
        assert client.post(acs(stack, AWS_IDP), data=form).status_code == 303
        again = other.post(acs(stack, AWS_IDP), data=form, headers={"Accept": "application/json"})
        assert_refused(stack, again, 401, "saml_replay")


def test_an_assertion_aws_cannot_read_is_refused_before_sts(stack: DevStack, idp: DevSamlIdp) -> None:
    """Encrypted to the broker's SP key: the broker decrypts and signs the person in, but AWS could not read it,
    so the pass-through grant is refused before STS, nothing issued."""
    cert = Path(stack.workdir / "sp" / "sp.crt").read_text()
    idp.aws_apps[sp_entity(stack, AWS_IDP)] = AwsApp(encrypt_to=cert)
    with browser.browser() as client:
        saml_response, landed = sign_in(client, stack, AWS_IDP)
        assert landed.status_code == 303, landed.text[:300]
        assert b"EncryptedAssertion" in base64.b64decode(saml_response)
        roles, csrf = listed(client, stack)
        assert roles == [SAML_ROLE]
        before, count = assumed_roles(), len(issued(stack))
        refused = browser.post_role(client, stack.broker_url, "credentials", SAML_ROLE, csrf)
    assert_refused(stack, refused, 403, "passthrough_not_for_aws")
    assert assumed_roles() == before and len(issued(stack)) == count
