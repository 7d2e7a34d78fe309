"""Attribute names as AD FS, Entra ID, Okta, Google Workspace and Keycloak send them, read with the
attributes/mfa sections of the shipped idp_configs files, over real HTTP: the identity (email, groups, mfa,
claims) and the roles granted. Each IdP is a pysaml2 IdP of its own naming attributes like the vendor."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from lxml import etree  # type: ignore[import-untyped]

from broker.devstack.dev_saml_idp import MFA_CONTEXT, PASSWORD_CONTEXT
from tests.saml_sp.conftest import NS, assert_refused, assertion_of
from tests.saml_sp.quirk_world import BASIC, URI, QuirkWorld, quirk_world, role_names, roles_view

__all__ = ["quirk_world"]  # the fixture, for pytest

CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims"
MS_CLAIMS = "http://schemas.microsoft.com/ws/2008/06/identity/claims"
IDENTITY = "http://schemas.microsoft.com/identity/claims"
AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"
PASSWORD_METHOD = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"
ENTRA_PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
ADMINS_GUID = "0e5b2f3a-6c1d-4f7e-9a2b-3c4d5e6f7a8b"


def _login(world: QuirkWorld, client: httpx.Client, idp: str, identity: dict[str, list[str]],
           **kw: Any) -> tuple[Any, dict[str, Any]]:
    request_id = world.start(client, idp)
    xml = world.vendor_signed(idp, request_id, identity, **kw)
    response = world.post(client, xml, idp)
    assert response.status_code == 303, response.text[:400]
    return world.identity(idp, xml, request_id), roles_view(world, client)


def _attribute(xml: str, name: str) -> Any:
    return etree.fromstring(xml.encode()).find(f".//saml:Attribute[@Name='{name}']", NS)


# ---- AD FS ------------------------------------------------------------------------------------------

ADFS = {f"{CLAIMS}/emailaddress": ["alice@example.com"], "http://schemas.xmlsoap.org/claims/Group": [
    "aws-admins", "aws-ops"], f"{MS_CLAIMS}/role": ["Finance"], f"{CLAIMS}/upn": ["alice@corp.example.com"],
    f"{MS_CLAIMS}/windowsaccountname": ["CORP\\alice"]}


def test_adfs_with_mfa(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, view = _login(quirk_world, client, "adfs", {**ADFS, AUTHN_METHODS: [PASSWORD_METHOD, MFA_CONTEXT]},
                            authn={"class_ref": MFA_CONTEXT})
    assert identity.email == "alice@example.com" and identity.email_verified is True
    assert identity.groups == ("aws-admins", "aws-ops") and identity.mfa is True
    assert identity.claims["upn"] == ("alice@corp.example.com",) and identity.claims["role"] == ("Finance",)
    assert identity.claims["windowsaccountname"] == ("CORP\\alice",)
    assert role_names(view) == ["Admin", "Ops", "Viewer"]


def test_adfs_password_only_is_not_mfa(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, view = _login(quirk_world, client, "adfs", {**ADFS, AUTHN_METHODS: [PASSWORD_METHOD]},
                            authn={"class_ref": PASSWORD_CONTEXT})
    assert identity.mfa is False and role_names(view) == ["Admin", "Viewer"]


# ---- Entra ID -------------------------------------------------------------------------------------------

ENTRA = {f"{CLAIMS}/emailaddress": ["alice@example.com"], f"{CLAIMS}/name": ["alice@corp.example.com"],
         f"{CLAIMS}/givenname": ["Alice"], f"{IDENTITY}/tenantid": ["72f988bf-86f1-41af-91ab-2d7cd011db47"],
         f"{IDENTITY}/objectidentifier": ["d3b07384-d9a0-4c9b-8e3f-1a2b3c4d5e6f"],
         f"{IDENTITY}/displayname": ["Alice Example"],
         f"{IDENTITY}/identityprovider": ["https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"],
         AUTHN_METHODS: [PASSWORD_METHOD, MFA_CONTEXT]}


def test_entra_group_object_ids_and_mfa_from_authnmethodsreferences(quirk_world: QuirkWorld,
                                                                      client: httpx.Client) -> None:
    """Entra's AuthnContextClassRef says Password even after MFA; authnmethodsreferences says multipleauthn."""
    identity, view = _login(quirk_world, client, "entra", {**ENTRA, f"{MS_CLAIMS}/groups": [ADMINS_GUID]},
                            authn={"class_ref": ENTRA_PASSWORD_CONTEXT})
    assert identity.email == "alice@example.com" and identity.groups == (ADMINS_GUID,) and identity.mfa is True
    assert identity.email_verified is None  # Entra's user.mail is not verified: entra-saml.yaml does not trust it
    claims = identity.claims
    assert claims["tenant_id"] == ("72f988bf-86f1-41af-91ab-2d7cd011db47",)
    assert claims["object_id"] == ("d3b07384-d9a0-4c9b-8e3f-1a2b3c4d5e6f",)
    assert claims["display_name"] == ("Alice Example",) and claims["upn"] == ("alice@corp.example.com",)
    assert role_names(view) == ["EntraAdmin", "Viewer"] and view["notices"] == []


def test_entra_without_second_factor(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    identity, _ = _login(quirk_world, client, "entra", {**ENTRA, AUTHN_METHODS: [PASSWORD_METHOD]},
                         authn={"class_ref": ENTRA_PASSWORD_CONTEXT})
    assert identity.mfa is False and identity.groups == ()


# ---- Okta --------------------------------------------------------------------------------------------

def test_okta_basic_name_format(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    request_id = quirk_world.start(client, "okta")
    xml = quirk_world.vendor_signed("okta", request_id, {"email": ["alice@example.com"],
                                                         "groups": ["aws-admins", "aws-ops"], "amr": ["pwd", "mfa"]},
                                    authn={"class_ref": PASSWORD_CONTEXT})
    assert _attribute(xml, "groups").get("NameFormat") == BASIC
    assert quirk_world.post(client, xml, "okta").status_code == 303
    identity = quirk_world.identity("okta", xml, request_id)
    assert identity.email == "alice@example.com" and identity.groups == ("aws-admins", "aws-ops")
    assert identity.mfa is True and identity.claims["amr"] == ("pwd", "mfa")
    assert role_names(roles_view(quirk_world, client)) == ["Admin", "Ops", "Viewer"]


# ---- Google Workspace ----------------------------------------------------------------------------------

def test_google_custom_attribute_mapping(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """Group membership sends group names; Google's AuthnContextClassRef never says MFA."""
    identity, view = _login(quirk_world, client, "google", {
        "email": ["alice@example.com"], "groups": ["aws-admins", "aws-ops"], "department": ["platform"]},
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"})
    assert identity.email == "alice@example.com" and identity.groups == ("aws-admins", "aws-ops")
    assert identity.mfa is False and identity.claims["department"] == ("platform",)
    assert role_names(view) == ["Admin", "Viewer"]


# ---- Keycloak --------------------------------------------------------------------------------------------

KEYCLOAK = {"email": ["alice@example.com"], "member": ["aws-admins"], "Role": ["aws-readonly", "offline_access"]}


def test_keycloak_builtin_mappers(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """X500 email: Name urn:oid:1.2.840.113549.1.9.1, FriendlyName email, NameFormat URI; the role list with
    Single Role Attribute on: one Role attribute with every role."""
    request_id = quirk_world.start(client, "keycloak")
    xml = quirk_world.vendor_signed("keycloak", request_id, KEYCLOAK,
                                    authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"})
    email = _attribute(xml, "urn:oid:1.2.840.113549.1.9.1")
    assert email.get("FriendlyName") == "email" and email.get("NameFormat") == URI
    assert quirk_world.post(client, xml, "keycloak").status_code == 303
    identity = quirk_world.identity("keycloak", xml, request_id)
    assert identity.email == "alice@example.com" and identity.groups == ("aws-admins",)
    assert identity.claims["roles"] == ("aws-readonly", "offline_access") and identity.mfa is False
    assert role_names(roles_view(quirk_world, client)) == ["Admin", "ReadOnly", "Viewer"]


def test_keycloak_role_list_one_attribute_per_role_refused(quirk_world: QuirkWorld, client: httpx.Client) -> None:
    """Keycloak's role list mapper with Single Role Attribute off (its default) repeats the Role attribute
    once per role: refused as a duplicated attribute (which of the repeated attributes counts is ambiguous);
    keycloak-saml.yaml says to turn Single Role Attribute on."""
    request_id = quirk_world.start(client, "keycloak")

    def split_roles(root: Any) -> None:
        role = assertion_of(root).find(".//saml:Attribute[@Name='Role']", NS)
        for value in role.findall("saml:AttributeValue", NS)[1:]:
            single = copy.deepcopy(role)
            for extra in single.findall("saml:AttributeValue", NS):
                single.remove(extra)
            single.append(value)
            role.addnext(single)
    xml = quirk_world.idps["keycloak"].resign(quirk_world.vendor_signed("keycloak", request_id, KEYCLOAK),
                                              split_roles)
    assert len(etree.fromstring(xml.encode()).findall(".//saml:Attribute[@Name='Role']", NS)) == 2
    assert_refused(quirk_world, client, quirk_world.post(client, xml, "keycloak"), 401, "saml_duplicate_attribute")


@pytest.mark.parametrize("vendor", ["adfs", "entra", "okta", "google", "keycloak"])
def test_shipped_config_sections_are_used(quirk_world: QuirkWorld, vendor: str) -> None:
    """The broker under test reads each vendor with the shipped file's own sections (not a test copy)."""
    import yaml

    from tests.saml_sp.quirk_world import REPO, VENDORS
    shipped = yaml.safe_load((REPO / "idp_configs" / VENDORS[vendor].file).read_text())
    config = quirk_world.configs[vendor]
    assert config.attributes.model_dump(exclude_defaults=True) == {
        k: v for k, v in shipped["attributes"].items() if k != "email_trusted" or v}
    assert config.mfa.model_dump(exclude_defaults=True) == {k: v for k, v in shipped["mfa"].items() if v}
