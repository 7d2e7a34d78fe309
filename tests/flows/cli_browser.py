"""The person's browser for `sts-broker login` in the flow tests: the client opens URLs through Python's
webbrowser module, which runs $BROWSER; the tests point $BROWSER at this module. It signs in through the dev
OIDC IdP as $STS_TEST_BROWSER_USER (broker/devstack/browser.py, real HTTP and cookies), answers the consent
page ($STS_TEST_BROWSER_DECISION, default allow) and follows the redirect to the client's loopback
listener, as a browser would. $STS_TEST_BROWSER_STATE, when set, replaces the state on the way (a forged
redirect); $STS_TEST_BROWSER_LOG names a file that gets two lines per sign-in (where it went, what it got).

    python -m tests.flows.cli_browser URL
"""

from __future__ import annotations

import os
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broker.devstack import browser
from tests.flows.cli_login import consent, sign_in_from


def _tampered(location: str, state: str) -> str:
    parts = urlsplit(location)
    query = [(k, state if k == "state" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def visit(url: str) -> None:
    parts = urlsplit(url)
    broker_url = f"{parts.scheme}://{parts.netloc}"
    with browser.browser() as client:
        first = client.get(url)
        page = first if "Allow" in first.text else sign_in_from(client, broker_url, first,
                                                                  os.environ["STS_TEST_BROWSER_USER"])
        answer = consent(client, broker_url, page, os.environ.get("STS_TEST_BROWSER_DECISION", "allow"))
        location = answer.headers["location"]
        forged = os.environ.get("STS_TEST_BROWSER_STATE")
        if forged is not None:
            location = _tampered(location, forged)
        landed = client.get(location)
        log = os.environ.get("STS_TEST_BROWSER_LOG")
        if log:
            with open(log, "a") as out:
                out.write(f"{url}\n{location.split('?')[0]} {landed.status_code} {landed.text[:200]!r}\n")


if __name__ == "__main__":
    visit(sys.argv[1])
