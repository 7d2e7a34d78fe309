"""The development OIDC provider: oidc-provider-mock (a real OP, not our code) with demo users."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import authlib.deprecate  # noqa: F401  (it installs an "always" filter at import; ours must come after)

from broker.devstack.servers import LOOPBACK, wsgi_server

with warnings.catch_warnings():
    # oidc-provider-mock still imports authlib.jose and authlib's httpx client; that is its business.
    warnings.filterwarnings("ignore", message=r"(authlib\.jose|The httpx) module is deprecated")
    import oidc_provider_mock

# Groups chosen so the demo rules grant alice two roles, bob one and carol none.
DEMO_USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@example.com", "email_verified": True, "name": "Alice Admin",
              "groups": ["platform-admins", "developers"], "department": "platform", "amr": ["pwd", "mfa"]},
    "bob": {"email": "bob@example.com", "email_verified": True, "name": "Bob Builder",
            "groups": ["developers"], "department": "payments", "amr": ["pwd"]},
    "carol": {"email": "carol@example.com", "email_verified": True, "name": "Carol Contractor",
              "groups": ["contractors", "developers"], "department": "external", "amr": ["pwd"]},
}


@contextmanager
def run_dev_idp(port: int = 0, users: Mapping[str, dict[str, Any]] = DEMO_USERS) -> Iterator[str]:
    """Yields the issuer URL, http://127.0.0.1:PORT."""
    app = oidc_provider_mock.app(
        require_nonce=True,
        user_claims=[oidc_provider_mock.User(sub=sub, claims=dict(claims)) for sub, claims in users.items()],
    )
    # The mock wraps itself in Werkzeug's interactive debugger; never serve that, even on loopback.
    app.wsgi_app = app.wsgi_app.app
    with wsgi_server(app, port) as bound:
        yield f"http://{LOOPBACK}:{bound}"
