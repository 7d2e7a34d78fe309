"""Where a browser may land after a login: a fixed allow-list of relative paths, matched exactly, plus two
narrow patterns for a login that interrupted a CLI step (the parked authorization request of
/oauth2/authorize, a device code at /device). An absolute URL, `//host`, a backslash, userinfo, a
percent-encoding or `javascript:` never matches: each pattern is anchored and its query value is one token
of a fixed alphabet. SAML carries the path as RelayState (at most 80 bytes, SAML core 3.4.3): all fit."""

from __future__ import annotations

import re

RETURN_PATHS = frozenset({"/roles", "/", "/sessions", "/device"})
RETURN_PATTERNS = (
    re.compile(r"/oauth2/authorize\?request=[A-Za-z0-9_-]{16,43}", re.ASCII),
    re.compile(r"/device\?user_code=[BCDFGHJKLMNPQRSTVWXZ]{4}-?[BCDFGHJKLMNPQRSTVWXZ]{4}", re.ASCII),
)


def is_return_path(path: str) -> bool:
    return path in RETURN_PATHS or any(p.fullmatch(path) for p in RETURN_PATTERNS)
