"""The broker's URL layout, known here only: the web routes are built from these templates, and the core
uses them for the URLs it hands to IdPs (OIDC redirect_uri, SAML ACS and entity ID) and for cookie paths.
IdP ids are path segments (config.py IDP_ID)."""

from __future__ import annotations

LOGIN = "/login/{idp}"
OIDC_CALLBACK = "/oidc/{idp}/callback"
SAML_ACS = "/saml/{idp}/acs"
SAML_METADATA = "/saml/{idp}/metadata"
SAML_IDP_METADATA = "/saml/idp/metadata"  # the broker's own SAML IdP (what IAM trusts)


def for_idp(template: str, idp: str) -> str:
    """A path of `template` for one IdP id (ids are path-safe: config.py checks them)."""
    return template.replace("{idp}", idp)
