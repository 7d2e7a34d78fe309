"""Real-world IdP metadata (tests/saml_corpus/metadata, sources in SOURCES.md): `sts-broker check` accepts each
document as an IdP's `metadata_file`, and the descriptor the broker builds from it says what the document says."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from broker.cli import main
from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import parse_metadata
from broker.service import load_components
from tests.saml_corpus.corpus import (
    CURRENT,
    FACTS,
    HERE,
    METADATA,
    RESPONSES,
    SECRET,
    SECRET_ENV,
    SIGNED,
    STALE,
    deployment,
    idp_yaml,
    metadata_file,
)


def common_name(certificate: str) -> str:
    der = base64.b64decode("".join(certificate.split()))
    with warnings.catch_warnings():  # TestShib's 2006 certificate has a negative serial number (RFC 5280 says
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # positive); real, and kept as is
        cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.mark.parametrize("vendor", CURRENT)
def test_check_accepts_real_metadata(vendor: str, tmp_path: Path, keys: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    file = deployment(tmp_path, keys, [idp_yaml(vendor, keys)])
    assert main(["check", "--config", str(file)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == f"{file}: OK"
    # The descriptor the running broker would use: the same loading path as `serve`.
    settings = load_settings(file)
    config = load_components(settings).idps[f"corpus-{vendor}"]
    assert isinstance(config, SamlIdpConfig)
    connector = SamlConnector(config, settings.public_url, None)
    descriptor = connector.metadata.loaded
    facts = FACTS[vendor]
    assert descriptor is not None
    assert (descriptor.entity_id, descriptor.sso_url, descriptor.sso_binding) == (
        facts.entity_id, facts.sso_url, facts.binding)
    assert len(descriptor.certificates) == facts.signing_certs
    assert common_name(descriptor.certificates[0]) == facts.cert_cn
    assert descriptor.want_authn_requests_signed is facts.wants_signed_requests
    # python3-saml (strict) takes the IdP settings built from it, as at every login.
    _, library = asyncio.run(connector.settings())
    idp = library.get_idp_data()
    assert (idp["entityId"], idp["singleSignOnService"]["url"]) == (facts.entity_id, facts.sso_url)
    assert idp["singleSignOnService"]["binding"].endswith(
        {"redirect": "HTTP-Redirect", "post": "HTTP-POST"}[facts.binding])


@pytest.mark.parametrize("vendor", [v for v in CURRENT if FACTS[v].binding == "post"])
def test_post_only_metadata_offers_no_redirect(vendor: str, tmp_path: Path, keys: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The POST-only documents really are POST-only: forcing HTTP-Redirect makes `check` fail on them."""
    file = deployment(tmp_path, keys, [idp_yaml(vendor, keys, sso_binding="redirect")])
    assert main(["check", "--config", str(file)]) == 1
    assert (f"{metadata_file(vendor)}: metadata lacks an IdP entityID, an HTTP-Redirect SSO URL or a signing "
            "certificate") in capsys.readouterr().err


@pytest.mark.parametrize("vendor", STALE)
def test_check_refuses_metadata_past_its_valid_until(vendor: str, tmp_path: Path, keys: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Google's 2016 document says validUntil 2021-01-03: `check` refuses it as stale, naming the file and the
    date; read at a time it was valid, it says what the document says."""
    facts = FACTS[vendor]
    file = deployment(tmp_path, keys, [idp_yaml(vendor, keys)])
    assert main(["check", "--config", str(file)]) == 1
    assert f"{metadata_file(vendor)}: metadata validUntil {facts.valid_until} has passed" in capsys.readouterr().err
    config = SamlIdpConfig.model_validate(idp_yaml(vendor, keys))
    descriptor = parse_metadata(metadata_file(vendor).read_bytes(), config, now=facts.read_at())
    assert (descriptor.entity_id, descriptor.sso_url, descriptor.sso_binding) == (
        facts.entity_id, facts.sso_url, facts.binding)
    assert len(descriptor.certificates) == facts.signing_certs
    assert common_name(descriptor.certificates[0]) == facts.cert_cn


def test_keycloak_metadata_needs_sp_keys(tmp_path: Path, keys: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Keycloak's realm descriptor says WantAuthnRequestsSigned="true": without sp_keys, `check` says so; the
    operator either adds sp_keys or sets want_authn_requests_signed: false (Client signature required OFF)."""
    plain = {k: v for k, v in idp_yaml("keycloak", keys).items() if k != "sp_keys"}
    file = deployment(tmp_path, keys, [plain])
    assert main(["check", "--config", str(file)]) == 1
    assert "metadata asks for signed AuthnRequests and this IdP has no sp_keys" in capsys.readouterr().err
    (tmp_path / "idp_configs" / "corpus-keycloak.yaml").write_text(
        yaml.safe_dump({**plain, "want_authn_requests_signed": False}))
    assert main(["check", "--config", str(file)]) == 0


def test_cli_checks_every_document_at_once(tmp_path: Path, keys: dict[str, Path]) -> None:
    """The installed console script, in its own process, on a deployment holding every corpus IdP."""
    file = deployment(tmp_path, keys, [idp_yaml(vendor, keys) for vendor in CURRENT])
    script = Path(sys.executable).parent / "sts-broker"
    env = {**os.environ, SECRET_ENV: SECRET}
    done = subprocess.run([str(script), "check", "--config", str(file)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"{file}: OK"), done.stderr
    # and the same process fails when one document in the set is refused
    (tmp_path / "idp_configs" / "corpus-onelogin.yaml").write_text(
        yaml.safe_dump(idp_yaml("onelogin", keys, sso_binding="redirect")))
    done = subprocess.run([str(script), "check", "--config", str(file)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert done.returncode == 1 and f"{metadata_file('onelogin')}: metadata lacks" in done.stderr


_ROW = re.compile(r"^\| ([\w.-]+\.xml) \| .* \| ([0-9a-f]{64}) \|$", re.MULTILINE)


def test_files_are_the_published_bytes() -> None:
    """Each file is listed in SOURCES.md with its SHA-256, and unchanged since; nothing unlisted lies here."""
    text = (HERE / "SOURCES.md").read_text()
    metadata_part, responses_part = text.split("## Responses", 1)
    listed = {**{METADATA / name: digest for name, digest in _ROW.findall(metadata_part)},
              **{RESPONSES / name: digest for name, digest in _ROW.findall(responses_part.split("## Left out")[0])}}
    on_disk = {*METADATA.glob("*"), *RESPONSES.glob("*")}
    assert set(listed) == on_disk
    for path, digest in listed.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path.name
    assert {p.stem for p in METADATA.glob("*.xml")} == set(FACTS)
    assert {p.name.removesuffix("-response.xml") for p in RESPONSES.glob("*.xml")} == set(SIGNED)



def test_aggregate_with_entity_id(tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The TestShib aggregate (an IdP and an SP): `entity_id:` names the IdP; naming the SP is refused and the
    error lists the IdP entity ids the document holds."""
    idp = FACTS["testshib-aggregate"].entity_id
    file = deployment(tmp_path, keys, [idp_yaml("testshib-aggregate", keys, entity_id=idp)])
    assert main(["check", "--config", str(file)]) == 0, capsys.readouterr().err
    (tmp_path / "idp_configs" / "corpus-testshib-aggregate.yaml").write_text(yaml.safe_dump(
        idp_yaml("testshib-aggregate", keys, entity_id="https://sp.testshib.org/shibboleth-sp")))
    assert main(["check", "--config", str(file)]) == 1
    err = capsys.readouterr().err
    assert "https://sp.testshib.org/shibboleth-sp" in err and idp in err, err
