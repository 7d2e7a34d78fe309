"""What the broker needs on its first requests but not to start: botocore (the SigV4 signer of signed STS calls,
the credential chain of the broker's own credentials: a fifth of a second to import), the CA store of the STS
connections, the outbound HTTP client's transport (broker/http_client.py), jinja2 (the first page). The modules
that use them import or build them where they are used, so start-up to the first /readyz does not wait for
them; a second after the app starts, a worker thread does it, so the first signed call (or page, or login) does
not pay for it on the event loop. A request that comes sooner does it itself, as start-up would have."""

from __future__ import annotations

import importlib
import os
import threading

PRELOAD_AFTER = 1.0  # seconds after the app's start-up: the server binds and answers its first probe first
DEFERRED = ("botocore.auth", "botocore.awsrequest", "botocore.credentials", "botocore.exceptions",
            "botocore.session", "jinja2", "starlette.templating")


def preload() -> None:
    from broker.http_client import build_transports
    from broker.issuers.sts_http import tls_context

    for name in DEFERRED:
        importlib.import_module(name)
    tls_context()
    build_transports()


def preload_in_background() -> threading.Thread:
    thread = threading.Thread(target=preload, name="sts-broker-preload", daemon=True)
    thread.start()
    return thread


def skip_pydantic_plugins() -> None:
    """pydantic looks for plugins (the entry points of every installed distribution, some 40 ms) when it
    builds its first model; the broker uses none. PYDANTIC_DISABLE_PLUGINS is pydantic's documented switch; a
    value already in the environment is kept. Called before the server's modules are imported."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
