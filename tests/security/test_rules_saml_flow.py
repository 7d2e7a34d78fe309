"""Finding 3 (issue 11) through the browser flow and the SAML assertion the broker mints: an OIDC login (a
hand-made IdP whose tokens PyJWT signs) granted a role via saml. The strict local AWS verifies the minted
assertion (signature against the registered provider, RoleSessionName, SourceIdentity, PrincipalTag values);
a look-alike email gets its own session name, and a subject XML cannot carry is refused, not a 500."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.config import load_settings
from broker.devstack import browser
from broker.devstack.local_aws import LocalAws, run_local_aws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import (
    SECRET_ENV,
    aws_client,
    register_broker_saml_in_iam,
    saml_trust_policy,
    write_config,
)
from broker.web.app import create_app
from tests.flows.test_refusals import handmade_login
from tests.support.token_issuer import TokenIssuer, running_issuer

ACCOUNT = "656565656565"  # this module's own account in moto's process-wide state
ROLE = f"arn:aws:iam::{ACCOUNT}:role/RulesSaml"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/sts-broker"
KAREN, KELVIN_KAREN = "karen@example.com", "\u212aaren@example.com"
RULES = {"version": 1, "rules": [{"id": "saml-named", "idps": ["handmade"], "grant": [
    {"role": ROLE, "via": "saml", "provider": PROVIDER, "session_name": "{email|lower}",
     "source_identity": "{email|lower}", "tags": {"who": "{email|lower}"}}]}]}


@dataclass(frozen=True)
class SamlEnv:
    broker_url: str
    aws: LocalAws
    idp: TokenIssuer
    audit_path: Path

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture(scope="module")
def saml_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlEnv]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    workdir = tmp_path_factory.mktemp("rules-saml")
    rules = workdir / "security-rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with running_issuer() as idp, run_local_aws(account_id=ACCOUNT) as aws, ExitStack() as stack:
        handmade = {"id": "handmade", "type": "oidc", "name": "Hand-made IdP", "issuer": idp.url,
                    "client_id": "client-1", "client_secret": "handmade-client-secret"}
        config = write_config(workdir, url, idp.url, aws, rules, {"handmade": handmade},
                              {"rate_limits": {"login_starts": 100000}})
        settings = load_settings(config)
        provider = register_broker_saml_in_iam(aws, settings)
        assert provider == PROVIDER
        aws_client(aws, "iam").create_role(RoleName="RulesSaml", AssumeRolePolicyDocument=saml_trust_policy(provider))
        stack.enter_context(asgi_server(create_app(settings), port))
        yield SamlEnv(url, aws, idp, Path(settings.audit.path))


def _credentials(env: SamlEnv, **claims: Any) -> httpx.Response:
    with browser.browser() as client:
        assert handmade_login(env, client, env.idp, **claims).status_code == 303  # it reads only .broker_url
        csrf = browser.roles(client, env.broker_url)["csrf_token"]
        return browser.post_role(client, env.broker_url, "credentials", ROLE, csrf, format="json")


def _caller(env: SamlEnv, response: httpx.Response) -> str:
    assert response.status_code == 200, response.text[:400]
    c = response.json()
    c = c.get("Credentials", c)
    sts = aws_client(env.aws, "sts", aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                     aws_session_token=c["SessionToken"])
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def test_a_look_alike_email_gets_its_own_saml_session(saml_env: SamlEnv) -> None:
    karen = _caller(saml_env, _credentials(saml_env, sub="saml-karen", email=KAREN))
    kelvin = _caller(saml_env, _credentials(saml_env, sub="saml-kelvin", email=KELVIN_KAREN))
    assert karen == f"arn:aws:sts::{ACCOUNT}:assumed-role/RulesSaml/{KAREN}"
    assert kelvin == f"arn:aws:sts::{ACCOUNT}:assumed-role/RulesSaml/=E2=84=AAaren@example.com"


@pytest.mark.parametrize("subject", ["a\x01b", "a\ufffeb", "a\x00"])
def test_a_subject_xml_cannot_carry_is_refused_not_a_500(saml_env: SamlEnv, subject: str) -> None:
    issued = sum(e["event"] == "credentials_issued" for e in saml_env.events())
    response = _credentials(saml_env, sub=subject, email=KAREN)
    assert response.status_code == 403, response.text[:300]
    body = response.json()
    assert body["error"] == "saml_subject_unusable" and body["message"] and "AccessKeyId" not in response.text
    [event] = [e for e in saml_env.events() if e.get("error_id") == body["error_id"]]
    assert event["event"] == "request_failed" and event["reason"] == "saml_subject_unusable"
    assert sum(e["event"] == "credentials_issued" for e in saml_env.events()) == issued
