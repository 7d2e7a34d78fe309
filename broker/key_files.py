"""Signing key files readable by a service's group: `sts-broker keys generate --group 10001` for the container
image, whose process runs as uid 10001 and gid 10001 and so cannot read a key that is mode 600 and owned by
the person who generated it. The key stays unreadable to anyone else (mode 640)."""

from __future__ import annotations

import grp
import os
from pathlib import Path

SHARED_MODE = 0o640


def group_id(group: str) -> int:
    """A group name, or a numeric id (which need not exist on this host: the image's group exists in the image)."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise LookupError(f"no group named {group!r} on this host; give its numeric id") from None


def share_with_group(file: Path, group: str) -> str:
    """Give the file to `group` with mode 640. Changing a file's group needs root or membership of the group
    (PermissionError otherwise). Returns the description the command prints."""
    gid = group_id(group)
    os.chown(file, -1, gid)
    os.chmod(file, SHARED_MODE)
    return f"mode 640, group {gid}"
