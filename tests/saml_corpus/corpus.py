"""The real-world corpus (see SOURCES.md) and what each document says, written down by reading the files.

Nothing here is computed from the documents: a test that parses them with the broker compares against these
values, so a parser change that reads a document differently fails.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
METADATA, RESPONSES = HERE / "metadata", HERE / "responses"
SECRET, SECRET_ENV = secrets.token_urlsafe(48), "CORPUS_SESSION_SECRET"


@dataclass(frozen=True, slots=True)
class Facts:
    entity_id: str
    sso_url: str
    binding: str  # the one the broker must choose: HTTP-Redirect when offered, else HTTP-POST
    signing_certs: int  # certificates usable for signatures in the IDPSSODescriptor
    wants_signed_requests: bool  # IDPSSODescriptor WantAuthnRequestsSigned
    cert_cn: str  # common name in the (first) signing certificate's subject
    valid_until: str | None = None  # the document's validUntil, when it has passed (the broker refuses it)

    def read_at(self) -> float | None:
        """A time at which the document was still valid (None: now)."""
        return None if self.valid_until is None else datetime.fromisoformat(self.valid_until).timestamp() - 86400


FACTS: dict[str, Facts] = {
    "okta": Facts("http://www.okta.com/exkdoocxa1VmjpXmX697",
                  "https://trial-1022863.okta.com/app/trial-1022863_oktalocalhostbis_1/exkdoocxa1VmjpXmX697/sso/saml",
                  "redirect", 1, False, "trial-1022863"),
    "entra-id": Facts("https://sts.windows.net/a9054a0f-2011-4e31-b3ac-fd8c354146ec/",
                      "https://login.microsoftonline.com/a9054a0f-2011-4e31-b3ac-fd8c354146ec/saml2",
                      "redirect", 1, False, "Microsoft Azure Federated SSO Certificate"),
    # AD FS: the IDPSSODescriptor has an encryption and a signing KeyDescriptor; only the signing one counts.
    "adfs": Facts("http://adfs.server.url/adfs/services/trust", "https://adfs.server.url/adfs/ls/",
                  "redirect", 1, False, "ADFS Signing - sts.unilever.com"),
    "google": Facts("https://accounts.google.com/o/saml2?idpid=C02dfl1r1",
                    "https://accounts.google.com/o/saml2/idp?idpid=C02dfl1r1", "post", 1, False, "Google",
                    "2021-01-03T16:17:49+00:00"),
    "google-2023": Facts("https://accounts.google.com/o/saml2?idpid=C029op2ga",
                         "https://accounts.google.com/o/saml2/idp?idpid=C029op2ga", "redirect", 1, False, "Google"),
    "keycloak": Facts("http://localhost:8085/realms/master", "http://localhost:8085/realms/master/protocol/saml",
                      "redirect", 1, True, "master"),
    "onelogin": Facts("https://app.onelogin.com/saml/metadata/503983",
                      "https://app.onelogin.com/trust/saml2/http-post/sso/503983", "post", 1, False,
                      "OneLogin Account 32614"),
    "pingone": Facts("https://auth.pingone.com/3030059e-440b-4ad0-9217-44326f1757f6",
                     "https://auth.pingone.com/3030059e-440b-4ad0-9217-44326f1757f6/saml20/idp/sso", "redirect", 1,
                     False, "PingOne SSO Certificate for Administrators environment"),
    "jumpcloud": Facts("IdP Entity ID", "https://sso.jumpcloud.com/saml2/ucariontest", "post", 1, False,
                       "JumpCloudSAMLUser"),
    "auth0": Facts("urn:dev-tyj7qyzz.auth0.com",
                   "https://dev-tyj7qyzz.auth0.com/samlp/AX3jRN4ECnojiEepVjvM7yVCEcpVX6w6", "redirect", 1, False,
                   "dev-tyj7qyzz.auth0.com"),
    # Shibboleth: its KeyDescriptor has no `use`, so the key signs (and encrypts).
    "testshib": Facts("https://idp.testshib.org/idp/shibboleth",
                      "https://idp.testshib.org/idp/profile/SAML2/Redirect/SSO", "redirect", 1, False,
                      "idp.testshib.org"),
    # The aggregate's first entity is the IdP (the other is TestShib's SP); a newer TestShib certificate.
    "testshib-aggregate": Facts("https://idp.testshib.org/idp/shibboleth",
                                "https://idp.testshib.org/idp/profile/SAML2/Redirect/SSO", "redirect", 1, False,
                                "idp.testshib.org"),
}

# Documents the broker must accept today; the others' validUntil has passed.
CURRENT = sorted(v for v, f in FACTS.items() if f.valid_until is None)
STALE = sorted(v for v, f in FACTS.items() if f.valid_until is not None)

# Real responses: which elements carry a ds:Signature (the metadata of the same name holds the key).
SIGNED: dict[str, tuple[str, ...]] = {
    "entra-id": ("Assertion",),
    "google": ("Response",),  # Google in 2016: the response signed, the assertion not
    "google-2023": ("Assertion",),
    "keycloak": ("Assertion",),
    "pingone": ("Assertion",),  # KeyInfo: the certificate and an RSAKeyValue
    "jumpcloud": ("Assertion",),
}


def metadata_file(vendor: str) -> Path:
    return METADATA / f"{vendor}.xml"


def response_file(vendor: str) -> Path:
    return RESPONSES / f"{vendor}-response.xml"


def idp_yaml(vendor: str, keys: dict[str, Path], **extra: Any) -> dict[str, Any]:
    """An IdP file as an operator writes it for this vendor: the downloaded metadata, nothing else (plus the
    SP key pair when the metadata asks for signed AuthnRequests)."""
    data: dict[str, Any] = {"id": f"corpus-{vendor}", "type": "saml", "name": f"{vendor} (corpus)",
                            "metadata_file": str(metadata_file(vendor))}
    if FACTS[vendor].wants_signed_requests:
        data["sp_keys"] = {"key_file": str(keys["sp_key"]), "cert_file": str(keys["sp_cert"])}
    return {**data, **extra}


def deployment(tmp: Path, keys: dict[str, Path], idps: list[dict[str, Any]]) -> Path:
    """A whole deployment (broker.yaml, rules, one file per IdP) that `sts-broker check` reads."""
    (tmp / "idp_configs").mkdir(parents=True)
    for idp in idps:
        (tmp / "idp_configs" / f"{idp['id']}.yaml").write_text(yaml.safe_dump(idp))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"version": 1, "rules": [
        {"id": "r", "grant": [{"role": "arn:aws:iam::111122223333:role/R"}]}]}))
    config = {"public_url": "https://broker.example.com", "session": {"secret": f"${{{SECRET_ENV}}}"},
              "keys": [{"kid": "k1", "file": str(keys["broker"]), "active": True}],
              "idp_configs": "idp_configs", "rules": "rules.yaml"}
    (tmp / "broker.yaml").write_text(yaml.safe_dump(config))
    return tmp / "broker.yaml"
