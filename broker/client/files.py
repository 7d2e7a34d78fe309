"""Private files: written atomically with mode 0600 inside 0700 directories, read only when they are regular
files owned by this user and readable by nobody else, never through a symbolic link."""

from __future__ import annotations

import os
import stat

from broker.client.errors import Refused

MAX_BYTES = 256 * 1024


def private_dir(path: str) -> str:
    """Create `path` (0700) if needed; refuse one that is not a directory of ours."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise Refused(f"{path} is not a directory owned by you")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # others could list or plant files in it
    return path


def read_private(path: str) -> bytes | None:
    """The file's bytes; None when it does not exist; Refused when it is not a private file of ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link
        raise Refused(f"{path}: not a plain file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise Refused(f"{path} is not a file owned by you")
        if info.st_mode & 0o077:
            raise Refused(f"{path} is readable or writable by others (mode {info.st_mode & 0o777:o})")
        if info.st_size > MAX_BYTES:
            raise Refused(f"{path} is too large ({info.st_size} bytes)")
        return os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a new file beside `path`, then rename it over `path`: readers see the old or the new, whole."""
    tmp = f"{path}.{os.getpid()}.tmp"
    remove(tmp)  # left by a process of ours with the same pid that died mid-write
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def remove(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
