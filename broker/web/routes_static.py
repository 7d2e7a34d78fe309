"""The broker's static files: a fixed allow-list (no path from the request reaches the file system)."""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

STATIC = Path(__file__).parent / "static"
# name -> media type. Scripts are served with their exact type: with `nosniff` a browser runs nothing else.
ASSETS = {"saml-post.js": "text/javascript; charset=utf-8", "credentials.js": "text/javascript; charset=utf-8",
          "credentials.css": "text/css; charset=utf-8"}
CACHE = "public, max-age=86400"  # the same bytes for a release; a day keeps repeat logins to one request


@functools.cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def asset(name: str) -> Response:
    return Response(_read(name), media_type=ASSETS[name], headers={"Cache-Control": CACHE})


async def saml_post_script(request: Request) -> Response:
    return asset("saml-post.js")


async def credentials_script(request: Request) -> Response:
    return asset("credentials.js")


async def credentials_style(request: Request) -> Response:
    return asset("credentials.css")
