"""Pass-through checks before any STS call (broker/issuers/passthrough.py), and the rules language accepting
`token: passthrough` with `via: saml`. The whole browser flows are in tests/flows/test_ident_browser_passthrough.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree  # type: ignore[import-untyped]
from pydantic import ValidationError

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Evidence
from broker.issuers.passthrough import check_id_token, check_saml_response
from broker.rules.evaluate import evaluate
from broker.rules.lint import lint
from broker.rules.schema import RuleSet
from tests.factories import identity
from tests.support.ident_evidence import id_token, saml_response

ROLE = "arn:aws:iam::111122223333:role/Federated"
PROVIDER = "arn:aws:iam::111122223333:saml-provider/Corp"
GRANT = RoleGrant(ROLE, "saml", PROVIDER, "alice", None, timedelta(hours=1), passthrough=True)
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"


def refused(call: object, *args: object) -> str:
    with pytest.raises(StsRefused) as info:
        call(*args)  # type: ignore[operator]
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in info.value.detail
    return info.value.reason


def test_a_live_id_token_passes_and_an_expired_one_is_refused() -> None:
    check_id_token(Evidence("id_token", id_token(timedelta(minutes=1))))
    assert refused(check_id_token, Evidence("id_token", id_token(timedelta(seconds=-1)))) == "passthrough_expired"
    assert refused(check_id_token, Evidence("id_token", id_token(exp=None))) == "passthrough_expired"
    assert refused(check_id_token, Evidence("id_token", id_token(exp="9999999999"))) == "passthrough_expired"
    assert refused(check_id_token, Evidence("id_token", "s3cr3t")) == "passthrough_unavailable"
    assert refused(check_id_token, Evidence("id_token", "a.s3cr3t!.b")) == "passthrough_unavailable"


def test_an_expiry_is_judged_at_the_time_asked() -> None:
    evidence = Evidence("id_token", id_token(timedelta(minutes=10)))
    check_id_token(evidence, datetime.now(UTC) + timedelta(minutes=9))
    assert refused(check_id_token, evidence, datetime.now(UTC) + timedelta(minutes=10)) == "passthrough_expired"


def test_a_saml_response_addressed_to_aws_and_still_valid_passes() -> None:
    check_saml_response(Evidence("saml_response", saml_response(ROLE, PROVIDER)), GRANT)
    regional = saml_response(ROLE, PROVIDER, recipient="https://eu-west-1.signin.aws.amazon.com/saml")
    check_saml_response(Evidence("saml_response", regional), GRANT)


def test_saml_refusals() -> None:
    def reason(value: str, now: datetime | None = None) -> str:
        return refused(check_saml_response, Evidence("saml_response", value), GRANT, now)

    expired = saml_response(ROLE, PROVIDER, now=datetime.now(UTC) - timedelta(minutes=10))
    assert reason(expired) == "passthrough_expired"
    live = saml_response(ROLE, PROVIDER, lifetime=timedelta(minutes=5))
    assert reason(live, datetime.now(UTC) + timedelta(minutes=6)) == "passthrough_expired"
    to_broker = saml_response(ROLE, PROVIDER, recipient="https://broker.example.com/saml/corp/acs")
    assert reason(to_broker) == "passthrough_not_for_aws"
    assert reason(saml_response(ROLE, PROVIDER, recipient="https://signin.aws.amazon.com.evil.example/saml")) \
        == "passthrough_not_for_aws"
    assert reason(_edited(live, _audience("https://broker.example.com/sp"))) == "passthrough_not_for_aws"
    assert reason(_edited(live, _encrypted)) == "passthrough_not_for_aws"
    assert reason("PHg+" * 30000) == "passthrough_not_for_aws"  # over STS's 100000 characters
    assert reason("not base64 s3cr3t") == "passthrough_unavailable"
    doctype = base64.b64encode(b'<!DOCTYPE x [<!ENTITY e "s3cr3t">]><x>&e;</x>').decode()
    assert reason(doctype) == "passthrough_unavailable"


def _edited(value: str, change: object) -> str:
    root = etree.fromstring(base64.b64decode(value))
    change(root)  # type: ignore[operator]
    return base64.b64encode(etree.tostring(root)).decode()


def _audience(replacement: str) -> object:
    def change(root: etree._Element) -> None:
        for node in root.iter(f"{{{SAML_NS}}}Audience"):
            node.text = replacement
    return change


def _encrypted(root: etree._Element) -> None:
    assertion = root.find(f"{{{SAML_NS}}}Assertion")
    root.replace(assertion, etree.Element(f"{{{SAML_NS}}}EncryptedAssertion"))


RULES = {"version": 1, "rules": [{"id": "corp", "grant": [
    {"role": ROLE, "via": "saml", "provider": PROVIDER, "token": "passthrough"}]}]}


def test_the_rules_language_accepts_passthrough_via_saml() -> None:
    rules = RuleSet.model_validate(RULES)
    assert lint(rules) == []  # saml is issued: no "not issuable" finding
    [grant] = evaluate(rules, identity(protocol="saml")).grants
    assert (grant.via, grant.provider_arn, grant.passthrough) == ("saml", PROVIDER, True)


def test_passthrough_via_assume_role_is_still_refused() -> None:
    spec = {"role": ROLE, "via": "assume_role", "token": "passthrough"}
    with pytest.raises(ValidationError, match="token: passthrough applies to via web_identity or saml only"):
        RuleSet.model_validate({"version": 1, "rules": [{"id": "r", "grant": [spec]}]})
