"""What every route reads about the running app, as one typed object: built once by create_app and kept
in `app.state.context`; routes read it through context_of(request), never app.state's untyped bag."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request

from broker.audit import AuditLog
from broker.metrics import Metrics
from broker.service import BrokerService
from broker.web.sessions import SessionManager

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates


@dataclass(frozen=True, slots=True)
class WebContext:
    service: BrokerService
    audit: AuditLog
    metrics: Metrics
    templates: Callable[[], Jinja2Templates]  # built on first use (render.lazy_templates)
    sessions: SessionManager
    cookie_name: str
    secure_cookies: bool  # public_url is https: cookies are Secure (SAML's cross-site one also SameSite=None)


def context_of_app(app: Starlette) -> WebContext:
    context = app.state.context
    assert isinstance(context, WebContext)  # set by create_app, never replaced
    return context


def context_of(request: Request) -> WebContext:
    return context_of_app(request.app)
