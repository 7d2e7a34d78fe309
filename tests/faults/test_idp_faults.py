"""An IdP's JWKS down or answering garbage (a hand-made OIDC IdP whose endpoints fail on cue): keys fetched
before keep verifying within their lifetime; a token no held key verifies is refused; with no keys held, every
login is a clear 502 naming the fault, and nothing unverified is ever accepted."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import yaml

from broker.devstack import browser
from broker.devstack.stack import DevStack
from broker.settings import ReadinessConfig
from tests.faults.conftest import assert_refused
from tests.support.own_stack import audit_events, moved, scrape, variant
from tests.support.token_issuer import TokenIssuer, new_key, running_issuer

JSON = {"Accept": "application/json"}


@contextmanager
def broker_with_idp(stack: DevStack, tmp_path: Path) -> Iterator[tuple[TokenIssuer, str]]:
    """A broker with the hand-made IdP configured (a fresh key cache), and the IdP."""
    with running_issuer() as issuer:
        idps = tmp_path / "idp_configs"
        shutil.copytree(stack.settings.idp_configs, idps)
        (idps / "handmade.yaml").write_text(yaml.safe_dump({
            "id": "handmade", "type": "oidc", "name": "Hand-made", "issuer": issuer.url, "client_id": "client-1",
            "client_secret": "handmade-client-secret", "timeout": "2s"}))
        with variant(stack, idp_configs=idps, readiness=ReadinessConfig(require_idps=True)) as url:
            yield issuer, url


def login(client: httpx.Client, url: str, issuer: TokenIssuer, sub: str, **sign: Any) -> httpx.Response:
    """Through the hand-made IdP: its token endpoint hands the broker an ID token signed as `sign` says."""
    authorize = urlsplit(browser.start_login(client, url, "handmade"))
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    issuer.next_id_token = issuer.sign(issuer.claims(sub=sub, nonce=params["nonce"], groups=["developers"]), **sign)
    return client.get(f"{url}/oidc/handmade/callback?{urlencode({'code': 'c', 'state': params['state']})}",
                      headers=JSON)


def _signed_in(stack: DevStack, sub: str) -> bool:
    return any(e["event"] == "login_succeeded" and e.get("subject") == sub for e in audit_events(stack))


def test_held_keys_keep_working_while_the_jwks_is_down(stack: DevStack, tmp_path: Path) -> None:
    with broker_with_idp(stack, tmp_path) as (issuer, url), browser.browser() as client:
        assert login(client, url, issuer, "before-outage").status_code == 303
        assert issuer.jwks_requests == 1
        issuer.jwks_status = 503
        with browser.browser() as other:
            assert login(other, url, issuer, "during-outage").status_code == 303  # the held, trusted set
            assert browser.roles(other, url)["roles"]
        assert _signed_in(stack, "during-outage")
        # A token under a key the held set lacks (a rotation, or a forgery): refused, never taken on trust.
        with browser.browser() as forger:
            refused = login(forger, url, issuer, "unknown-key", key=new_key(), kid="rotated-key")
            assert_refused(stack, refused, 401, "signature_invalid")
            assert "set-cookie" not in refused.headers
            assert forger.get(f"{url}/roles", headers=JSON).status_code == 401
        assert not _signed_in(stack, "unknown-key")


@pytest.mark.parametrize(("fault", "reason"), [
    ({"jwks_status": 503}, "idp_http_error"),
    ({"jwks_status": 404}, "idp_http_error"),
    ({"jwks_body": b"{not json"}, "idp_bad_answer"),
    ({"jwks_body": b'{"keys": 5}'}, "jwks_invalid"),
    ({"jwks_body": b"[" * 5000 + b"]" * 5000}, "idp_bad_answer"),
    ({"jwks_delay": 3.5}, "idp_timeout"),  # the IdP's `timeout` is 2 s
])
def test_no_keys_held_and_the_jwks_broken_is_a_502(stack: DevStack, tmp_path: Path, fault: dict[str, Any],
                                                   reason: str) -> None:
    with broker_with_idp(stack, tmp_path) as (issuer, url), browser.browser() as client:
        for name, value in fault.items():
            setattr(issuer, name, value)
        before = scrape(url)
        sub = f"broken-jwks-{reason}"
        started = time.monotonic()
        refused = login(client, url, issuer, sub)
        assert time.monotonic() - started < 3.5
        assert_refused(stack, refused, 502, reason)
        assert "set-cookie" not in refused.headers and not _signed_in(stack, sub)
        assert moved(before, scrape(url), "sts_broker_idp_refreshes_total", idp="handmade", kind="jwks",
                     outcome=reason) == 1
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["idps"]["handmade"] != "ok"
        assert issuer.url not in ready.text
        # The IdP well again, but within the failure back-off: not asked again yet (one fetch per 5 s in an outage).
        issuer.jwks_status, issuer.jwks_body, issuer.jwks_delay = 200, None, 0.0
        assert_refused(stack, login(client, url, issuer, sub), 502, "jwks_backoff")


def test_logins_recover_by_themselves_when_the_jwks_is_back(stack: DevStack, tmp_path: Path) -> None:
    with broker_with_idp(stack, tmp_path) as (issuer, url), browser.browser() as client:
        issuer.jwks_body = b"garbage"
        assert login(client, url, issuer, "recovering").status_code == 502
        issuer.jwks_body = None
        deadline = time.monotonic() + 15
        while (status := login(client, url, issuer, "recovering").status_code) == 502:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert status == 303 and _signed_in(stack, "recovering")
        assert httpx.get(f"{url}/readyz").status_code == 200
