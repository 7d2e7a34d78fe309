"""What every page's shell (templates/base.html) shows around the page: the product name, the signed-in
person with a sign-out button when the request has a session, and the static files' versioned URLs.

A route that loads the browser session (web_session, page_session, or session_of directly) leaves it on the
request; the shell reads it from there, so a page shows who is signed in without every route passing it,
and an error page shows it too when the failing route had loaded a session first."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from broker.web.context import context_of
from broker.web.sessions import Session

PRODUCT = "sts-broker"


async def session_of(request: Request) -> Session | None:
    """The request's browser session (None without a valid one), remembered for the shell."""
    context = context_of(request)
    session = await context.sessions.load(request.cookies.get(context.cookie_name))
    request.state.shell_session = session
    return session


def initials(name: str) -> str:
    """One or two letters for a badge: the first letters of the first two words ("Development SAML IdP" ->
    "DS"), else the first two characters."""
    words = [w for w in name.replace("-", " ").replace("_", " ").split() if w[:1].isalnum()]
    letters = "".join(w[0] for w in words[:2]) if len(words) > 1 else (words[0][:2] if words else "?")
    return letters.upper()


def chooser_idps(request: Request) -> list[dict[str, str | None]]:
    """The sign-in chooser's entries (index.html), by display name: id, name, and icon (a data: URL) or None
    for the initials badge."""
    service = context_of(request).service
    icons = service.idps.icons
    idps = [{"id": i, "name": n, "icon": icons.get(i)} for i, n in service.browser_idps()]
    return sorted(idps, key=lambda i: str(i["name"]))


def idp_name(request: Request, idp_id: str) -> str:
    return dict(context_of(request).service.browser_idps()).get(idp_id, idp_id)


def shell_context(request: Request) -> dict[str, Any]:
    """The Jinja context processor: `shell`, with `who`, `idp` (the IdP's display name) and `csrf_token`
    when the route loaded a session, else None."""
    session: Session | None = getattr(request.state, "shell_session", None)
    if session is None:
        return {"shell": None, "product": PRODUCT}
    ident = session.identity
    return {"product": PRODUCT, "shell": {"who": ident.email or ident.subject, "idp": idp_name(request, ident.idp),
                                          "csrf_token": session.csrf_token}}
