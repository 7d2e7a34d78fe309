"""The HTTP-POST binding at load time: which binding the descriptor takes, and SSO URLs refused with a clear
error (a metadata file or inline config at start-up, `sts-broker check` included)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker.cli import main
from broker.connectors.saml_config import SamlIdpConfig
from broker.connectors.saml_metadata import _from_file, parse_metadata
from broker.devstack.dev_saml_idp import Binding, DevSamlIdp, saml_idp_config
from broker.errors import ConfigError
from tests.saml_sp.post_world import evil_metadata

BAD_SSO_URLS = {
    "http://evil.example/sso": "must use https",
    "javascript:alert(1)": "not a valid URL",
    "data:text/html,<form>": "not a valid URL",
    "https://user@idp.example/sso": "not a valid URL",
    "https://idp.example/sso#top": "without userinfo or fragment",
    "ftp://idp.example/sso": "must be an https URL",
}


@pytest.fixture(scope="module")
def idps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DevSamlIdp]]:
    work = tmp_path_factory.mktemp("post-config")
    bindings: dict[str, tuple[Binding, ...]] = {"post": ("post",), "redirect": ("redirect",),
                                                 "both": ("redirect", "post")}
    yield {name: DevSamlIdp("https://idp.example", work / name, bindings=b) for name, b in bindings.items()}


def _config(**kw: Any) -> SamlIdpConfig:
    return SamlIdpConfig.model_validate({"id": "corp", "type": "saml", "name": "Corp",
                                         "metadata_url": "https://idp.example/md", **kw})


def test_the_binding_each_metadata_gives(idps: dict[str, DevSamlIdp]) -> None:
    def parsed(name: str, **kw: Any) -> tuple[str, str]:
        descriptor = parse_metadata(idps[name].metadata_xml().encode(), _config(**kw))
        return descriptor.sso_binding, descriptor.sso_url

    assert parsed("post") == ("post", "https://idp.example/sso/post")
    assert parsed("redirect") == ("redirect", "https://idp.example/sso/redirect")
    assert parsed("both") == ("redirect", "https://idp.example/sso/redirect")
    assert parsed("both", sso_binding="post") == ("post", "https://idp.example/sso/post")
    assert parsed("post", sso_binding="post") == ("post", "https://idp.example/sso/post")


def test_sso_binding_post_without_a_post_endpoint_is_refused(idps: dict[str, DevSamlIdp], tmp_path: Path) -> None:
    file = tmp_path / "md.xml"
    file.write_text(idps["redirect"].metadata_xml())
    with pytest.raises(ConfigError, match="lacks an IdP entityID, an HTTP-POST SSO URL"):
        _from_file(file, _config(sso_binding="post"))


@pytest.mark.parametrize("url", list(BAD_SSO_URLS))
def test_metadata_with_a_bad_post_sso_url_is_refused_at_load(idps: dict[str, DevSamlIdp], tmp_path: Path,
                                                              url: str) -> None:
    file = tmp_path / "md.xml"
    file.write_bytes(evil_metadata(idps["post"], url.replace("<", "&lt;")))
    with pytest.raises(ConfigError) as info:
        _from_file(file, _config())
    assert str(file) in str(info.value) and "SSO URL" in str(info.value) and BAD_SSO_URLS[url] in str(info.value)


def test_plain_http_sso_url_only_on_loopback(idps: dict[str, DevSamlIdp]) -> None:
    for url in ("http://127.0.0.1:9/sso", "http://localhost:9/sso", "http://[::1]:9/sso"):
        assert parse_metadata(evil_metadata(idps["post"], url), _config()).sso_url == url
    with pytest.raises(ValueError) as info:
        parse_metadata(evil_metadata(idps["post"], "http://10.0.0.1/sso"), _config())
    assert "HTTP-POST SSO URL 'http://10.0.0.1/sso' is refused: must use https" in str(info.value)


@pytest.mark.parametrize("url", list(BAD_SSO_URLS))
def test_inline_post_config_with_a_bad_sso_url_is_refused(idps: dict[str, DevSamlIdp], url: str) -> None:
    inline = saml_idp_config("corp", "https://idp.example", idps["post"].certificate)
    with pytest.raises(ValidationError, match="sso_url"):
        SamlIdpConfig.model_validate({**inline, "sso_url": url, "sso_binding": "post"})


def test_sts_broker_check_names_the_refused_sso_url(idps: dict[str, DevSamlIdp], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator sees: `sts-broker check` fails, naming the file and the SSO URL."""
    from broker.devstack.local_aws import LocalAws
    from broker.devstack.stack import DEMO_RULES, SECRET_ENV, write_config

    monkeypatch.setenv(SECRET_ENV, secrets.token_urlsafe(48))
    monkeypatch.setenv("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))

    metadata = tmp_path / "onelogin-md.xml"
    metadata.write_bytes(evil_metadata(idps["post"]))
    idp = {k: v for k, v in saml_idp_config("onelogin", "https://idp.example", "x").items()
           if k not in {"entity_id", "sso_url", "certificates"}} | {"metadata_file": str(metadata)}
    aws = LocalAws("http://127.0.0.1:9", "http://127.0.0.1:9", "123456789012")
    config = write_config(tmp_path, "https://broker.example.com", "https://idp.example", aws, DEMO_RULES,
                          {"onelogin": idp}, {})
    code = main(["check", "--config", str(config)])
    out = capsys.readouterr()
    assert code != 0
    assert "HTTP-POST SSO URL 'http://evil.example/sso' is refused: must use https" in out.out + out.err
