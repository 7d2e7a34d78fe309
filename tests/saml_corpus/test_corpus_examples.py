"""The shipped idp_configs/ SAML examples against the vendors' real metadata (tests/saml_corpus/metadata).

Each example, with its IdP source (metadata_url, or entity_id + sso_url + certificates) replaced by the real
document of the same vendor, passes `sts-broker check`: its attribute, MFA and NameID settings and any
`sso_binding` it sets hold with what the vendor really publishes. And the URLs an example shows have the shape
the vendor's real document has (the same pattern fits both).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli import main
from broker.config import load_settings
from broker.connectors.saml_config import SamlIdpConfig
from broker.service import load_components
from tests.saml_corpus.corpus import FACTS, deployment, metadata_file

EXAMPLES = Path(__file__).resolve().parents[2] / "idp_configs"
SOURCE_KEYS = ("metadata_url", "metadata_refresh", "entity_id", "sso_url", "certificates")

# example file -> (corpus document, [(key in the example, field of the real descriptor, pattern both must match)])
MATCHES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "okta-saml": ("okta", [("entity_id", "entity_id", r"http://www\.okta\.com/exk\w+$"),
                           ("sso_url", "sso_url", r"https://[\w-]+\.okta\.com/app/[\w-]+/exk\w+/sso/saml$")]),
    # Okta's metadata URL is https://{org}.okta.com/app/{app id}/sso/saml/metadata, beside the SSO URL's path.
    "okta-aws-saml": ("okta", [("metadata_url", "sso_url", r"https://[\w-]+\.okta\.com/app/([\w-]+/)?exk\w+/sso/saml")]),
    "google-saml": ("google-2023", [("entity_id", "entity_id", r"https://accounts\.google\.com/o/saml2\?idpid=\w+$"),
                               ("sso_url", "sso_url", r"https://accounts\.google\.com/o/saml2/idp\?idpid=\w+$")]),
    "keycloak-saml": ("keycloak", [("entity_id", "entity_id", r"https?://[\w.:-]+/realms/[\w-]+$"),
                                   ("sso_url", "sso_url", r"https?://[\w.:-]+/realms/[\w-]+/protocol/saml$")]),
    "adfs-saml": ("adfs", [("entity_id", "entity_id", r"http://[\w.-]+/adfs/services/trust$"),
                           ("sso_url", "sso_url", r"https://[\w.-]+/adfs/ls/$")]),
    "entra-saml": ("entra-id", [("metadata_url", "sso_url", r"https://login\.microsoftonline\.com/[0-9a-f-]{36}/")]),
    "onelogin-saml": ("onelogin", [("metadata_url", "entity_id", r"https://app\.onelogin\.com/saml/metadata/\d+$")]),
    "jumpcloud-saml": ("jumpcloud", [("sso_url", "sso_url", r"https://sso\.jumpcloud\.com/saml2/[\w-]+$")]),
    "pingone-saml": ("pingone", [("metadata_url", "entity_id", r"https://auth\.pingone\.com/[0-9a-f-]{36}")]),
    "auth0-saml": ("auth0", [("metadata_url", "sso_url", r"https://[\w-]+(\.[a-z]{2})?\.auth0\.com/samlp/")]),
    "shibboleth-saml": ("testshib", [("metadata_url", "entity_id", r"https://[\w.-]+/idp/shibboleth$")]),
}


def example(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    assert isinstance(data, dict) and data["type"] == "saml"
    return data


def test_every_saml_example_has_a_real_document() -> None:
    shipped = {p.stem for p in EXAMPLES.glob("*.yaml") if yaml.safe_load(p.read_text()).get("type") == "saml"}
    assert shipped - {"generic-saml"} == set(MATCHES)  # generic-saml: any IdP; its metadata is an example file


@pytest.mark.parametrize("name", sorted(MATCHES))
def test_example_with_the_vendors_real_metadata(name: str, tmp_path: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    vendor, _ = MATCHES[name]
    data = {k: v for k, v in example(name).items() if k not in SOURCE_KEYS}
    data["metadata_file"] = str(metadata_file(vendor))
    if FACTS[vendor].wants_signed_requests and "want_authn_requests_signed" not in data:
        data["sp_keys"] = {"key_file": str(keys["sp_key"]), "cert_file": str(keys["sp_cert"])}
    file = deployment(tmp_path, keys, [data])
    assert main(["check", "--config", str(file)]) == 0, capsys.readouterr().err
    config = load_components(load_settings(file)).idps[data["id"]]
    assert isinstance(config, SamlIdpConfig)
    if "sso_binding" in example(name):  # an example that pins a binding pins the one the vendor publishes
        assert example(name)["sso_binding"] == FACTS[vendor].binding


@pytest.mark.parametrize("name", sorted(MATCHES))
def test_example_urls_have_the_vendors_shape(name: str) -> None:
    vendor, checks = MATCHES[name]
    data, facts = example(name), FACTS[vendor]
    for key, field, pattern in checks:
        assert re.match(pattern, str(data[key])), f"{name}.yaml {key}: {data[key]!r}"
        assert re.match(pattern, getattr(facts, field)), f"{vendor}.xml {field}: {getattr(facts, field)!r}"
