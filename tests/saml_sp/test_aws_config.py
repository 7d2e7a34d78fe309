"""`aws_passthrough` in a SAML IdP's config: `true` means AWS's own values for the aws partition; explicit lists
hold only AWS's sign-in endpoints and audiences of the chosen partition; nothing else is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from broker.connectors.saml_config import SamlIdpConfig

BASE = {"id": "corp", "type": "saml", "name": "Corp", "metadata_file": "metadata/corp.xml"}  # read later, at start


def _config(**extra: Any) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({**BASE, **extra})


def test_off_by_default_and_true_is_aws_defaults() -> None:
    assert _config().aws_passthrough is None and _config(aws_passthrough=False).aws_passthrough is None
    option = _config(aws_passthrough=True).aws_passthrough
    assert option is not None and option.partition == "aws"
    assert option.recipients == {"https://signin.aws.amazon.com/saml"}
    assert option.audiences == {"urn:amazon:webservices"}


def test_explicit_aws_values() -> None:
    option = _config(aws_passthrough={
        "accept_recipients": ["https://eu-west-1.signin.aws.amazon.com/saml", "https://signin.aws.amazon.com/saml"],
        "accept_audiences": ["urn:amazon:webservices", "https://signin.aws.amazon.com/saml"]}).aws_passthrough
    assert option is not None and "https://eu-west-1.signin.aws.amazon.com/saml" in option.recipients
    gov = _config(aws_passthrough={"partition": "aws-us-gov"}).aws_passthrough
    assert gov is not None and gov.recipients == {"https://signin.amazonaws-us-gov.com/saml"}
    assert gov.audiences == {"urn:amazon:webservices:govcloud"}


@pytest.mark.parametrize(("option", "message"), [
    ({"accept_recipients": ["https://evil.example/saml"]}, "not an AWS sign-in endpoint"),
    ({"accept_recipients": ["https://signin.aws.amazon.com.evil.example/saml"]}, "not an AWS sign-in endpoint"),
    ({"accept_recipients": ["https://signin.amazonaws-us-gov.com/saml"]}, "not an AWS sign-in endpoint"),
    ({"accept_audiences": ["https://broker.example/saml/corp/metadata"]}, "not one of AWS's audiences"),
    ({"partition": "aws-cn", "accept_audiences": ["urn:amazon:webservices"]}, "not one of AWS's audiences"),
    ({"partition": "aws-moon"}, "partition"),
    ({"accept_recipients": "https://signin.aws.amazon.com/saml"}, "list"),
])
def test_anything_but_awss_own_values_is_refused(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _config(aws_passthrough=option)
    assert message in str(info.value)


def test_not_with_encrypted_assertions(tmp_path: Any) -> None:
    keys = {"key_file": str(tmp_path / "k.pem"), "cert_file": str(tmp_path / "c.pem")}
    with pytest.raises(ValidationError) as info:
        _config(aws_passthrough=True, want_assertions_encrypted=True, sp_keys=keys)
    assert "AWS cannot read an assertion encrypted to the broker" in str(info.value)
