"""The page of a login whose start is a form to post (the SAML HTTP-POST binding)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import UpstreamUnavailable
from broker.logins.base import LoginStart
from broker.web.csp import csp_with
from broker.web.render import page


def post_page(request: Request, start: LoginStart) -> Response:
    """A page whose form posts the AuthnRequest to the IdP's SSO URL (the descriptor's, never anything from
    the request), submitted by the broker's static script, or by its button without JavaScript. Its policy
    allows only that script and only form posts to the SSO URL's origin."""
    origin = form_origin(start.url)
    context = {"idp_name": start.idp_name, "action": start.url, "saml_request": start.fields["SAMLRequest"],
               "relay_state": start.fields["RelayState"]}
    response = page(request, "saml_post.html", context)
    response.headers["Content-Security-Policy"] = csp_with(origin)
    return response


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def form_origin(url: str) -> str:
    """The CSP source for the SSO URL's origin. The URL passed the IdP URL rule when it was loaded; this
    refuses anything that could not stand in a policy as exactly one origin (no space, `;`, `,`, quote)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme not in {"https", "http"} or not _ORIGIN.fullmatch(origin):
        raise UpstreamUnavailable(f"SSO URL {url[:100]!r} has no origin a policy can name",
                                  reason="saml_sso_url_refused",
                                  public="This identity provider's sign-in address cannot be used here. "
                                         "Ask the broker's operator.")
    return origin
