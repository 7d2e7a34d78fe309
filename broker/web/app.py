"""create_app(settings): builds everything; nothing is built at import time."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from broker import urls
from broker.audit import AuditLog
from broker.errors import BrokerError
from broker.logs import quiet_chatty_loggers
from broker.metrics import Metrics
from broker.service import BrokerService
from broker.settings import Settings
from broker.web import (
    openapi,
    routes_admin,
    routes_authorize,
    routes_cli,
    routes_container,
    routes_device,
    routes_login,
    routes_meta,
    routes_roles,
    routes_saml,
    routes_sessions,
    routes_static,
    routes_token,
)
from broker.web.context import WebContext, context_of_app
from broker.web.errors import broker_error, http_error, unexpected_error
from broker.web.middleware import BodyLimit, SecurityHeaders
from broker.web.proxy import ForwardedFor, IpNetwork
from broker.web.render import templates
from broker.web.sessions import SessionManager

ROUTES = [
    # Routes are tried in order: the machine-facing endpoint that takes the load comes first.
    Route("/oauth2/token", routes_token.token, methods=["POST", "OPTIONS"]),
    Route(routes_container.CONTAINER_PATH, routes_container.credentials),
    Route("/", routes_login.index),
    Route(urls.LOGIN, routes_login.login),
    Route(urls.OIDC_CALLBACK, routes_login.callback),
    Route(urls.SAML_IDP_METADATA, routes_meta.saml_idp_metadata),
    Route(urls.SAML_ACS, routes_saml.acs, methods=["POST"]),
    Route(urls.SAML_METADATA, routes_saml.metadata),
    Route("/static/saml-post.js", routes_static.saml_post_script),
    Route("/static/credentials.js", routes_static.credentials_script),
    Route("/static/credentials.css", routes_static.credentials_style),
    Route("/logout", routes_login.logout, methods=["POST"]),
    Route("/roles", routes_roles.roles),
    Route("/roles/console", routes_roles.console, methods=["POST"]),
    Route("/roles/credentials", routes_roles.credentials, methods=["POST"]),
    Route("/oauth2/authorize", routes_authorize.authorize, methods=["GET"]),
    Route("/oauth2/authorize", routes_authorize.answer, methods=["POST"]),
    Route("/oauth2/revoke", routes_token.revoke, methods=["POST"]),
    Route("/cli/session", routes_cli.session_info),
    Route("/cli/roles", routes_cli.roles),
    Route("/cli/credentials", routes_cli.credentials, methods=["POST"]),
    Route("/cli/console", routes_cli.console, methods=["POST"]),
    Route("/sessions", routes_sessions.sessions),
    Route("/sessions/revoke", routes_sessions.revoke, methods=["POST"]),
    Route("/.well-known/openid-configuration", routes_meta.openid_configuration),
    Route("/.well-known/jwks.json", routes_meta.jwks),
    Route("/admin/rules/explain", routes_admin.explain, methods=["POST"]),
    Route("/oauth2/device_authorization", routes_token.oauth_endpoint(routes_device.device_authorization),
          methods=["POST"]),
    Route("/device", routes_device.device_page),
    Route("/device", routes_device.device_decide, methods=["POST"]),
    Route("/cli/container-tokens", routes_container.create_token, methods=["POST"]),
    Route("/openapi.json", openapi.openapi),
    Route("/healthz", routes_meta.healthz),
    Route("/readyz", routes_meta.readyz),
    Route("/metrics", routes_meta.metrics),
]


def create_app(settings: Settings, *, audit: AuditLog | None = None,
               trusted_proxies: Sequence[IpNetwork] = ()) -> Starlette:
    """`trusted_proxies`: the load balancers whose X-Forwarded-For names the client (`serve
    --forwarded-allow-ips`); empty, the TCP peer is the client."""
    quiet_chatty_loggers()
    audit = audit or AuditLog(settings.audit.path)
    service = BrokerService.build(settings, audit)
    metrics = Metrics()
    audit.observers.append(metrics.observe_event)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.close()

    # With a listener of its own, /metrics is served there only (metrics_app) and is a 404 here.
    routes = [r for r in ROUTES if settings.metrics.listen is None or getattr(r, "path", "") != "/metrics"]
    app = Starlette(
        routes=routes,
        middleware=[*([Middleware(ForwardedFor, trusted=trusted_proxies)] if trusted_proxies else []),
                    Middleware(SecurityHeaders, metrics=metrics, access=settings.access_log),
                    Middleware(BodyLimit, max_bytes=settings.max_body_bytes)],
        exception_handlers={BrokerError: broker_error, HTTPException: http_error, Exception: unexpected_error},
        lifespan=lifespan,
    )
    # Starlette answers `/roles/` with a redirect to an absolute URL built from the Host header (a client
    # chooses it: `Host: evil.example` -> `http://evil.example/roles`). Absolute URLs come only from
    # public_url, so a path with a stray slash is a 404 like any other unknown path.
    app.router.redirect_slashes = False
    app.state.context = WebContext(
        service=service, audit=audit, metrics=metrics, templates=templates(),
        sessions=SessionManager(service.store, settings.session.secret.get_secret_value(),
                                settings.session.lifetime.total_seconds()),
        cookie_name=settings.session.cookie_name,
        secure_cookies=urlsplit(settings.public_url).scheme == "https",
    )
    return app


def metrics_app(app: Starlette) -> Starlette:
    """The app of `metrics.listen`: GET /metrics over the main app's state (the same counters, the same
    token check), everything else the broker's 404."""
    settings = context_of_app(app).service.settings
    side = Starlette(
        routes=[Route("/metrics", routes_meta.metrics)],
        middleware=[Middleware(SecurityHeaders, access=settings.access_log)],
        exception_handlers={BrokerError: broker_error, HTTPException: http_error, Exception: unexpected_error},
    )
    side.router.redirect_slashes = False
    side.state = app.state
    return side


YOUNG_GENERATION = 10_000  # CPython's default is 700


def settle_heap() -> None:
    """For a server process, once its app is built. Two things about the cyclic garbage collector:
    - everything alive now (imported libraries, compiled rules, keys) is frozen out of its reach, so a
      full collection walks only what requests allocate, not botocore's and pydantic's start-up objects;
    - the young generation is larger: with hundreds of exchanges in flight, CPython's 700 net allocations
      are reached every few requests, and each young collection re-scans every in-flight request's objects
      (measured under the token-exchange bench: 1,616 young and 146 middle collections, 1.4 s of 24 s;
      with 10,000: 5 collections, 0.01 s). Objects still die by reference count as before; only cycles
      wait longer, bounded by the threshold.
    Never call it in tests: what it freezes is never freed."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, old)
