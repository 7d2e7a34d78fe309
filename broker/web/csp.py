"""The broker's Content-Security-Policy: scripts and styles only from its own static files (no inline script
or style, no `'unsafe-inline'`), no framing, no <base>, and forms that post only where the broker sends them.

`form-action` is checked by browsers on every redirect that follows a form's POST, not only on the form's
own URL: "Open console" (POST /roles/console) is answered with a redirect to the AWS federation endpoint
(and from there to the console), "Allow" on the CLI consent page with one to the command line's loopback
redirect. The default policy names those destinations; a page that posts elsewhere (the SAML HTTP-POST
page, to its IdP) replaces `form-action` through csp_with and nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from broker.outputs.console import PARTITIONS

# Everything but form-action: a policy that starts with this text was built here (middleware.SecurityHeaders
# keeps it instead of adding the default beside it).
FIXED = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "base-uri 'none'", "frame-ancestors 'none'",
))
# RFC 8252 loopback redirects of `sts-broker login` (any port). An IPv6 literal has no CSP source syntax.
LOOPBACK = ("http://127.0.0.1:*",)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def aws_signin_sources(*configured: str | None) -> list[str]:
    """The sign-in and console origins of every partition (a region's sign-in host too), and the configured
    overrides (aws.federation_url, aws.console_url: the devstack's local AWS)."""
    sources: list[str] = []
    for partition in PARTITIONS.values():
        for url in (partition.federation_url, partition.console_url):
            origin = _origin(url)
            sources += [origin, origin.replace("https://", "https://*.", 1)]
    return [*dict.fromkeys([*sources, *(_origin(url) for url in configured if url)])]


def policy(form_action: Iterable[str] = ()) -> str:
    """The policy whose form-action is 'self' and `form_action`."""
    sources = " ".join(dict.fromkeys(("'self'", *form_action)))
    return f"{FIXED}; form-action {sources}"


CSP = policy()  # the default without any off-site form destination


def csp_with(form_action: str) -> str:
    """The broker's policy with `form_action` (sources) as the whole form-action directive."""
    return f"{FIXED}; form-action {form_action}"


def app_policy(federation_url: str | None = None, console_url: str | None = None) -> str:
    """The default policy of an app: forms may lead to the AWS sign-in (every partition, and the configured
    endpoints) and to the command line's loopback redirect."""
    return policy([*aws_signin_sources(federation_url, console_url), *LOOPBACK])
