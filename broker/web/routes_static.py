"""The broker's static files (its stylesheet and scripts): GET /static/{name} from broker/web/static.

Only the files found there at start-up are served, looked up by name in a table: no path from the request
ever reaches the file system, so `..`, encoded slashes and unknown names are the broker's 404. Pages link
each file as `static_url(name)` (`/static/NAME?v=HASH`, a hash of its bytes): a URL that carries the current
hash is the same bytes forever and is cached as immutable; any other (no `v`, an old release's `v`) is
answered with the current bytes and a short cache life, so a deploy is seen within minutes at worst."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from broker.errors import NotFound

STATIC = Path(__file__).parent / "static"
# Extension -> media type. Exact types: under `nosniff` a browser runs and applies nothing else.
MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".svg": "image/svg+xml", ".png": "image/png"}
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"  # an unversioned URL: the current file, re-checked after five minutes
HASH_CHARS = 16


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # the first HASH_CHARS hex digits of the body's SHA-256


@functools.cache
def assets() -> dict[str, Asset]:
    """Every servable file, read once: a name of lower-case letters, digits, dots and dashes with a known
    extension (no hidden or backup files)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None and _NAME.fullmatch(path.name):
            body = path.read_bytes()
            found[path.name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:HASH_CHARS])
    return found


def static_url(name: str) -> str:
    """The versioned URL of a static file, for templates. A name that is not there fails the render (a
    KeyError): a page never links a file the broker would answer with a 404."""
    return f"/static/{name}?v={assets()[name].version}"


def _not_found(name: str) -> NotFound:
    return NotFound(f"no static file {name[:80]!r}", reason="static_not_found", public="No such file.")


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    asset = assets().get(name)
    if asset is None:
        raise _not_found(name)
    current = request.query_params.get("v") == asset.version
    return Response(asset.body, media_type=asset.media_type, headers={"Cache-Control": IMMUTABLE if current else SHORT})
