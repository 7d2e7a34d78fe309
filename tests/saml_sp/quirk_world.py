"""A broker with IdPs configured as real ones are, each answered by a pysaml2 IdP of its own (its own key,
attribute names and NameFormat through a pysaml2 attribute map), over real HTTP. The vendor IdPs use the
attributes, mfa and name_id_format sections of the shipped idp_configs/*.yaml files, so a wrong name in
one of those files fails here."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lxml import etree  # type: ignore[import-untyped]

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import DevSamlIdp, saml_idp_config, write_key_and_cert
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import SECRET_ENV, DevStack, write_config
from broker.identity import Identity
from broker.web.app import create_app
from tests.saml_sp.conftest import SamlWorld

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "111122223333"
URI, BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri", "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
UNSPECIFIED_NAME = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"

RULES = {
    "version": 1, "accounts": {ACCOUNT: "quirks"},
    "rules": [
        {"id": "admins", "when": {"groups": {"contains": "aws-admins"}},
         "grant": [{"role": f"arn:aws:iam::{ACCOUNT}:role/Admin"}]},
        {"id": "entra-admins", "when": {"groups": {"contains": "0e5b2f3a-6c1d-4f7e-9a2b-3c4d5e6f7a8b"}},
         "grant": [{"role": f"arn:aws:iam::{ACCOUNT}:role/EntraAdmin"}]},
        {"id": "ops-mfa", "require_mfa": True, "when": {"groups": {"contains": "aws-ops"}},
         "grant": [{"role": f"arn:aws:iam::{ACCOUNT}:role/Ops"}]},
        {"id": "keycloak-readonly", "when": {"roles": {"contains": "aws-readonly"}},
         "grant": [{"role": f"arn:aws:iam::{ACCOUNT}:role/ReadOnly"}]},
        {"id": "everyone", "when": {"email": {"ends_with": "@example.com"}},
         "grant": [{"role": f"arn:aws:iam::{ACCOUNT}:role/Viewer"}]},
    ],
}


@dataclass(frozen=True)
class Vendor:
    """An IdP as a vendor configures it: the shipped idp_configs file, and how its pysaml2 twin names
    attributes (identity key -> the Attribute Name it sends; the key is the FriendlyName) in which NameFormat."""

    file: str
    name_form: str | None = None
    names: Mapping[str, str] | None = None


VENDORS = {
    # AD FS and Entra send claim-type URIs as Attribute Names, with no NameFormat and no FriendlyName.
    "adfs": Vendor("adfs-saml.yaml"),
    "entra": Vendor("entra-saml.yaml"),
    # Okta: the names typed into the app's attribute statements, NameFormat Basic.
    "okta": Vendor("okta-saml.yaml", BASIC, {"email": "email", "groups": "groups", "amr": "amr"}),
    # Google Workspace: the app attribute names typed into the custom SAML app's attribute mapping.
    "google": Vendor("google-saml.yaml", UNSPECIFIED_NAME, {"email": "email", "groups": "groups",
                                                           "department": "department"}),
    # Keycloak's built-in mappers: "X500 email" (urn:oid, FriendlyName email, NameFormat URI); the group list
    # and role list mappers as configured in keycloak-saml.yaml (member, Role).
    "keycloak": Vendor("keycloak-saml.yaml", URI, {"email": "urn:oid:1.2.840.113549.1.9.1", "member": "member",
                                                  "Role": "Role"}),
}


@dataclass
class QuirkWorld(SamlWorld):
    idps: dict[str, DevSamlIdp]
    old_key: Path
    old_cert: Path
    third_key: Path
    third_cert: Path
    configs: dict[str, SamlIdpConfig]
    sp_cert: Path

    def identity(self, idp: str, xml: str, request_id: str | None) -> Identity:
        """What the broker's connector reads from the response, with the same config as the running broker
        (verified again in-process; nothing is consumed here: the HTTP post did that)."""
        connector = SamlConnector(self.configs[idp], self.stack.broker_url, None)
        descriptor, settings = asyncio.run(connector.settings())
        incoming = connector.receive(base64.b64encode(xml.encode()).decode())
        return connector.verify(settings, descriptor, incoming, request_id).identity

    def vendor_signed(self, idp: str, request_id: str | None, identity: dict[str, list[str]], **kw: Any) -> str:
        kw.setdefault("destination", self.acs(idp))
        kw.setdefault("sp_entity_id", self.sp_entity(idp))
        return self.idps[idp].response_xml("alice", in_response_to=request_id, identity=identity, **kw)


def vendor_config(idp_id: str, idp: DevSamlIdp, vendor: Vendor) -> dict[str, Any]:
    """The shipped file's sections that say how this IdP names things; this IdP's entity id, URL and key."""
    shipped = yaml.safe_load((REPO / "idp_configs" / vendor.file).read_text())
    base = saml_idp_config(idp_id, idp.url, idp.certificate)
    base.pop("want_assertions_signed")
    return {**base, **{k: shipped[k] for k in ("attributes", "mfa", "name_id_format", "provides") if k in shipped}}


def metadata_two_keys(idp: DevSamlIdp, old_cert: Path) -> str:
    """The IdP's metadata (pysaml2's own) during a rollover: a second KeyDescriptor, without `use`, with the
    old certificate beside the current one."""
    root = etree.fromstring(idp.metadata_xml().encode())
    current = root.find(f".//{{{MD}}}KeyDescriptor")
    old = copy.deepcopy(current)
    old.attrib.pop("use", None)
    body = "".join(line for line in old_cert.read_text().splitlines() if not line.startswith("-----"))
    old.find(".//{http://www.w3.org/2000/09/xmldsig#}X509Certificate").text = body
    current.addprevious(old)
    return str(etree.tostring(root, encoding="unicode"))


@pytest.fixture(scope="module")
def quirk_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuirkWorld]:
    work = tmp_path_factory.mktemp("quirks")
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_url = f"http://{LOOPBACK}:{free_port()}"
    main = DevSamlIdp(f"http://{LOOPBACK}:{free_port()}", work / "idp")
    old_key, old_cert = write_key_and_cert(work / "old", "old", "dev-saml-idp")
    third_key, third_cert = write_key_and_cert(work / "third", "third", "dev-saml-idp")
    other_key, other_cert = write_key_and_cert(work / "other", "attacker", "dev-saml-idp")
    plain = {k: v for k, v in saml_idp_config("x", main.url, main.certificate).items()
             if k not in {"id", "want_assertions_signed"}}
    (work / "broker" / "idp_configs").mkdir(parents=True)
    (work / "broker" / "idp_configs" / "rollover-metadata.xml").write_text(metadata_two_keys(main, old_cert))
    configs: dict[str, dict[str, Any]] = {
        "either": {**plain, "id": "either", "want_assertions_signed": False},
        "default": {**plain, "id": "default"},
        "strict": {**plain, "id": "strict", "want_assertions_signed": True},
        "rollover": {**plain, "id": "rollover", "want_assertions_signed": False,
                     "certificates": [old_cert.read_text(), main.certificate]},
        "rollmeta": {**{k: v for k, v in plain.items() if k not in {"entity_id", "sso_url", "certificates"}},
                     "id": "rollmeta", "metadata_file": "rollover-metadata.xml", "want_assertions_signed": False},
    }
    for fmt in ("emailAddress", "persistent", "transient", "unspecified"):
        configs[f"nid-{fmt.lower()}"] = {**plain, "id": f"nid-{fmt.lower()}", "name_id_format": fmt,
                                 "attributes": {"groups": "groups", "email_trusted": True}}
    sp_key, sp_cert = write_key_and_cert(work / "sp", "sp", "sts-broker-sp")
    configs["encrypted"] = {**plain, "id": "encrypted", "want_assertions_encrypted": True,
                            "want_assertions_signed": False,
                            "sp_keys": {"key_file": str(sp_key), "cert_file": str(sp_cert)}}
    configs["nid-email-attr"] = {**plain, "id": "nid-email-attr", "name_id_format": "persistent"}
    idps = {name: main for name in configs}
    for name, vendor in VENDORS.items():
        idps[name] = DevSamlIdp(f"http://{LOOPBACK}:{free_port()}", work / name, name_form=vendor.name_form,
                                attribute_names=vendor.names)
        configs[name] = vendor_config(name, idps[name], vendor)
    sp_md: dict[DevSamlIdp, list[str]] = {}
    models: dict[str, SamlIdpConfig] = {}
    for name, config in configs.items():
        models[name] = SamlIdpConfig.model_validate({**config, "metadata_file": work / "broker" / "idp_configs" /
                                                     config["metadata_file"]} if "metadata_file" in config else config)
        sp_md.setdefault(idps[name], []).append(SamlConnector(models[name], broker_url, None).sp_metadata())
    for idp, metadata in sp_md.items():
        idp.trust_sp(metadata)
    rules = work / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    dead = f"http://{LOOPBACK}:{free_port()}"
    aws = LocalAws(dead, dead, ACCOUNT)
    config_file = write_config(work / "broker", broker_url, dead, aws, rules, configs,
                               {"rate_limits": {"login_starts": 100000, "acs_posts": 100000}})
    settings = load_settings(config_file)
    with asgi_server(create_app(settings), int(broker_url.rsplit(":", 1)[1])):
        stack = DevStack(broker_url, dead, aws, work / "broker", settings, Path(settings.audit.path), main.url, main)
        yield QuirkWorld(stack, main, other_key, other_cert, idps, old_key, old_cert, third_key, third_cert,
                         models, sp_cert)


def roles_view(world: SamlWorld, client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{world.stack.broker_url}/roles", headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text[:300]
    body: dict[str, Any] = response.json()
    return body


def role_names(view: Mapping[str, Any]) -> list[str]:
    return sorted(r["role_arn"].rsplit("/", 1)[1] for r in view["roles"])
