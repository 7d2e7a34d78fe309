"""Pages and JSON: content negotiation and templates."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from broker.web.context import context_of
from broker.web.routes_static import static_url
from broker.web.shell import initials, shell_context

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

TEMPLATES = Path(__file__).parent / "templates"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OrjsonResponse(Response):
    """JSON like Starlette's JSONResponse (compact, UTF-8), encoded by orjson: a tenth of json's cost for the
    token endpoint's answers."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def templates() -> Jinja2Templates:
    import jinja2
    from starlette.templating import Jinja2Templates

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    env.globals["static_url"] = static_url
    env.globals["initials"] = initials
    return Jinja2Templates(env=env, context_processors=[shell_context])


def lazy_templates() -> Callable[[], Jinja2Templates]:
    """templates(), built on first use: importing jinja2 is a third of a bare app's start-up, and no page is
    needed to answer /readyz (broker/warmup.py imports it once the app serves)."""
    return functools.cache(templates)


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return context_of(request).templates().TemplateResponse(request, name, context, status_code=status,
                                                            headers=NO_STORE)
