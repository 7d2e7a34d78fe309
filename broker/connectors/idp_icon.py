"""An IdP's optional icon (`icon:` in its config file: a PNG or SVG file beside it), shown in the sign-in
chooser instead of the initials badge. Read once at start and served inside the page as a `data:` URL, the
one image source besides the broker's own that its Content-Security-Policy allows: no file path or URL from
the config ever reaches a browser. An SVG shown through <img> runs no script."""

from __future__ import annotations

import base64
from pathlib import Path

MAX_BYTES = 16 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def icon_media_type(data: bytes) -> str | None:
    """image/png or image/svg+xml by content (not by file name), else None."""
    if data.startswith(PNG_MAGIC):
        return "image/png"
    head = data[:512].lstrip().lower()
    if (head.startswith(b"<svg") or head.startswith(b"<?xml")) and b"<svg" in data.lower():
        return "image/svg+xml"
    return None


def icon_problem(path: Path) -> str | None:
    """Why the file cannot be an icon, or None."""
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        return f"icon {path} is {len(data)} bytes: at most {MAX_BYTES}"
    if icon_media_type(data) is None:
        return f"icon {path} is neither a PNG nor an SVG file"
    return None


def icon_data_url(path: Path) -> str:
    """The icon as a data: URL (the config loader has checked it with icon_problem)."""
    data = path.read_bytes()
    return f"data:{icon_media_type(data)};base64,{base64.b64encode(data).decode()}"
