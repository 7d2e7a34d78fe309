"""A broker and pysaml2 IdPs for the HTTP-POST AuthnRequest binding, over real HTTP on loopback.

- `idp_post` publishes only HTTP-POST (as OneLogin and Google's SAML IdP do) and wants signed AuthnRequests:
  pysaml2 verifies each request's XML signature against the broker's SP metadata.
- `idp_both` publishes HTTP-Redirect and HTTP-POST and wants no signature.
The broker's IdPs: `postonly` (idp_post's metadata file), `inlinepost` (idp_post spelled out, sso_binding:
post), `both` (idp_both's metadata: Redirect preferred), `bothpost` (the same with sso_binding: post),
`quirky` (an SSO URL whose query carries markup), `badmeta` (a metadata URL whose POST SSO URL is plain http
to another host), `v6` (an SSO URL on an IPv6 loopback literal, which no CSP source can name).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.config import load_settings
from broker.connectors.saml import SamlConnector
from broker.connectors.saml_config import SamlIdpConfig
from broker.devstack.dev_saml_idp import DevSamlIdp, run_dev_saml_idp, saml_idp_config, write_key_and_cert
from broker.devstack.local_aws import LocalAws
from broker.devstack.servers import LOOPBACK, asgi_server, free_port, wsgi_server
from broker.devstack.stack import DEMO_RULES, SECRET_ENV, DevStack, write_config
from broker.web.app import create_app
from tests.saml_sp.conftest import SamlWorld

EVIL_SSO = "http://evil.example/sso"
QUIRKY_QUERY = '?idpid="><script>alert(1)</script>&x=<b>'


@dataclass
class PostWorld:
    saml: SamlWorld  # the broker (stack) and idp_post, for conftest's assert_refused
    idp_post: DevSamlIdp
    idp_both: DevSamlIdp
    sp_key: Path
    sp_cert: Path
    work: Path

    @property
    def url(self) -> str:
        return self.saml.stack.broker_url


def _from_metadata(idp_id: str, name: str, idp: DevSamlIdp, file: Path, **extra: Any) -> dict[str, Any]:
    inline = saml_idp_config(idp_id, idp.url, idp.certificate)
    base = {k: v for k, v in inline.items() if k not in {"entity_id", "sso_url", "certificates"}}
    file.write_text(idp.metadata_xml())
    return {**base, "name": name, "metadata_file": str(file), **extra}


def _configs(work: Path, idp_post: DevSamlIdp, idp_both: DevSamlIdp, sp_keys: Mapping[str, str],
             metadata_port: int) -> dict[str, dict[str, Any]]:
    inline = saml_idp_config("inlinepost", idp_post.url, idp_post.certificate)
    return {
        "postonly": _from_metadata("postonly", "Post-only IdP", idp_post, work / "post-md.xml", sp_keys=sp_keys),
        "inlinepost": {**inline, "name": "Inline POST IdP", "sso_url": idp_post.sso_urls["post"],
                       "sso_binding": "post", "want_authn_requests_signed": True, "sp_keys": sp_keys},
        "both": _from_metadata("both", "Both-bindings IdP", idp_both, work / "both-md.xml"),
        "bothpost": _from_metadata("bothpost", "Both, POST chosen", idp_both, work / "both-md.xml",
                                   sso_binding="post"),
        "quirky": {**saml_idp_config("quirky", idp_both.url, idp_both.certificate), "name": "Quirky <b>IdP</b>",
                   "sso_url": idp_both.sso_urls["post"] + QUIRKY_QUERY, "sso_binding": "post"},
        "badmeta": {k: v for k, v in _from_metadata("badmeta", "Bad metadata", idp_post, work / "unused.xml").items()
                    if k != "metadata_file"} | {"metadata_url": f"http://{LOOPBACK}:{metadata_port}/md.xml",
                                                "sp_keys": sp_keys},
        "v6": {**saml_idp_config("v6", idp_both.url, idp_both.certificate), "sso_url": "http://[::1]:9/sso/post",
               "sso_binding": "post"},
    }


def evil_metadata(idp: DevSamlIdp, sso: str = EVIL_SSO) -> bytes:
    """The IdP's metadata, HTTP-POST only, with its SSO URL replaced (what a hostile or broken IdP serves)."""
    return idp.metadata_xml().replace(idp.sso_urls["post"], sso).encode()


def _metadata_app(body: bytes) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/samlmetadata+xml")])
        return [body]

    return app


@contextmanager
def post_world(work: Path) -> Iterator[PostWorld]:
    os.environ.setdefault(SECRET_ENV, secrets.token_urlsafe(48))
    os.environ.setdefault("DEV_IDP_CLIENT_SECRET", secrets.token_urlsafe(24))
    broker_port, post_port, both_port, metadata_port = free_port(), free_port(), free_port(), free_port()
    broker_url = f"http://{LOOPBACK}:{broker_port}"
    idp_post = DevSamlIdp(f"http://{LOOPBACK}:{post_port}", work / "idp-post", bindings=("post",),
                          want_authn_requests_signed=True)
    idp_both = DevSamlIdp(f"http://{LOOPBACK}:{both_port}", work / "idp-both")
    sp_key, sp_cert = write_key_and_cert(work / "sp", "sp", "sts-broker-sp")
    configs = _configs(work, idp_post, idp_both, {"key_file": str(sp_key), "cert_file": str(sp_cert)},
                       metadata_port)
    sp_metadata = [SamlConnector(SamlIdpConfig.model_validate(c), broker_url, None).sp_metadata()
                   for name, c in configs.items() if name != "badmeta"]
    idp_post.trust_sp(sp_metadata)
    idp_both.trust_sp(sp_metadata)
    dead = f"http://{LOOPBACK}:{free_port()}"
    aws = LocalAws(dead, dead, "123456789012")
    config = write_config(work / "broker", broker_url, dead, aws, DEMO_RULES, configs,
                          {"rate_limits": {"login_starts": 100000, "acs_posts": 100000}})
    settings = load_settings(config)
    with ExitStack() as stack:
        stack.enter_context(run_dev_saml_idp(idp_post, post_port))
        stack.enter_context(run_dev_saml_idp(idp_both, both_port))
        stack.enter_context(wsgi_server(_metadata_app(evil_metadata(idp_post)), metadata_port))
        stack.enter_context(asgi_server(create_app(settings), broker_port))
        dev = DevStack(broker_url, dead, aws, work / "broker", settings, Path(settings.audit.path), idp_post.url,
                       idp_post)
        other_key, other_cert = write_key_and_cert(work / "other", "attacker", "dev-saml-idp")
        yield PostWorld(SamlWorld(dev, idp_post, other_key, other_cert), idp_post, idp_both, sp_key, sp_cert, work)
