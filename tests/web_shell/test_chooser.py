"""The IdP chooser names each identity provider by its configured display name, with an initials badge,
never by its id alone."""

from __future__ import annotations

import re

import httpx
import pytest

from broker.devstack.stack import SAML_IDP_ID, SAML_POST_IDP_ID, DevStack
from broker.web.shell import initials


@pytest.mark.parametrize(("name", "badge"), [
    ("Development IdP (oidc-provider-mock)", "DI"), ("Development SAML IdP via HTTP-POST", "DS"),
    ("Okta", "OK"), ("corp-sso", "CS"), ("  ", "?"), ("(x) Azure", "AZ"), ("Ünïcode IdP", "ÜI"),
])
def test_initials(name: str, badge: str) -> None:
    assert initials(name) == badge


def test_the_chooser_shows_names_and_badges(shell_stack: DevStack) -> None:
    page = httpx.get(f"{shell_stack.broker_url}/").text
    links = re.findall(r'<a class="idp" href="/login/([a-z0-9-]+)">\s*<span class="badge" aria-hidden="true">'
                       r'([^<]+)</span><span>([^<]+)</span></a>', page)
    by_id = {idp_id: (badge, name) for idp_id, badge, name in links}
    assert by_id["dev"] == ("DI", "Development IdP (oidc-provider-mock)")
    assert set(by_id) == {"dev", SAML_IDP_ID, SAML_POST_IDP_ID}  # and "iconic", with its icon (test_icons.py)
    assert 'href="/login/iconic"' in page
    names = [name for _, _, name in links]
    assert names == sorted(names)  # in the order a person reads them
    assert all(name != idp_id for idp_id, _, name in links)
