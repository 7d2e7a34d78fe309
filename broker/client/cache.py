"""The per-role credential cache: one JSON file per (broker, role, duration), mode 0600 in a 0700 directory,
bound to the CLI session that fetched it. A file that is not ours (wrong owner or mode, a symbolic link),
not what we write, or written for another session, broker or role is never trusted: one line on stderr,
then the credentials are fetched again and the file replaced.

Refresh: botocore's credential_process provider treats credentials as due for refresh 15 minutes before
their Expiration (advisory) and 10 minutes before (mandatory), and then runs the process again on every
use. So cached credentials are handed out only while more than REFRESH_BEFORE (16 minutes) is left, or,
for a role whose credentials live a short time (STS allows 15 minutes), more than half their lifetime:
a 15-minute role is refreshed 7.5 minutes before it expires, not on every call.

One process refreshes while the others wait: an exclusive flock on a lock file beside the cache file, and
a second look at the cache once it is held, so twenty parallel `aws` calls make one STS call.

Not encrypted: see the "credential cache at rest" section of the client notes in README.md. Encrypting
with a key kept beside the cache (the only place a non-interactive credential_process can read it from
without a keyring round trip on every call) would stop nobody who can read these files."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from broker.client import files
from broker.client.errors import ClientError, Refused
from broker.client.state import SessionInfo

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads the name)
if TYPE_CHECKING:
    from typing import Any

REFRESH_BEFORE = 16 * 60
LOCK_WAIT = 60.0
LOCK_POLL = 0.02
FIELDS = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class Entry:
    __slots__ = ("credentials", "expires_at", "issued_at")

    def __init__(self, credentials: dict[str, Any], issued_at: float, expires_at: float) -> None:
        self.credentials = credentials  # credential_process JSON: Version 1, the keys, Expiration
        self.issued_at, self.expires_at = issued_at, expires_at

    def fresh(self, now: float) -> bool:
        margin = min(REFRESH_BEFORE, (self.expires_at - self.issued_at) / 2)
        return self.expires_at - now > margin


def cache_file(cache_dir: str, role: str, duration: int | None) -> str:
    """One file per role and duration (the cache holds one session's credentials: a login clears it). The
    role quoted, not hashed: hashlib loads OpenSSL, a fifth of the start-up budget (the hash only for a
    name too long for a file name)."""
    key = urllib.parse.quote(f"{role}@{duration or ''}", safe="")
    if len(key) > 200:
        import hashlib

        key = hashlib.sha256(key.encode()).hexdigest()
    return os.path.join(cache_dir, key + ".json")


def _warn(path: str, why: str) -> None:
    print(f"sts-broker: ignoring the credential cache file {path}: {why}; fetching new credentials",
          file=sys.stderr)


def _entry(data: Any, session: SessionInfo, role: str) -> Entry | str:
    """The entry in a parsed cache file, or why it is not one of ours."""
    if not isinstance(data, dict) or data.get("v") != 1:
        return "not a cache file of sts-broker"
    if (data.get("broker"), data.get("session_id"), data.get("role")) != (session.broker, session.session_id, role):
        return "written for another session, broker or role"
    creds, issued, expires = data.get("credentials"), data.get("issued_at"), data.get("expires_at")
    if not (isinstance(creds, dict) and creds.get("Version") == 1
            and all(isinstance(creds.get(f), str) and creds[f] for f in FIELDS)
            and isinstance(issued, int | float) and isinstance(expires, int | float) and issued < expires):
        return "its content is not valid"
    return Entry(credentials=creds, issued_at=float(issued), expires_at=float(expires))


def read(path: str, session: SessionInfo, role: str, *, quiet: bool = False) -> Entry | None:
    try:
        raw = files.read_private(path)
        if raw is None:
            return None
        found = _entry(json.loads(raw), session, role)
    except Refused as exc:
        found = str(exc).removeprefix(path).lstrip(": ") or "refused"
    except ValueError:
        found = "not valid JSON"
    if isinstance(found, str):
        if not quiet:
            _warn(path, found)
        return None
    return found


def write(path: str, session: SessionInfo, role: str, entry: Entry) -> None:
    data = {"v": 1, "broker": session.broker, "session_id": session.session_id, "role": role,
            "issued_at": entry.issued_at, "expires_at": entry.expires_at, "credentials": entry.credentials}
    # A rename replaces a symbolic link planted at `path` itself, never the file it points to.
    files.write_private(path, json.dumps(data).encode())


@contextmanager
def locked(path: str) -> Iterator[None]:
    """Exclusive flock on `path`, waiting at most LOCK_WAIT seconds (then going on without it: a stuck
    process elsewhere must not stop this one from getting credentials)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # releases the lock


def as_entry(answer: dict[str, Any], now: float) -> Entry:
    """The broker's POST /cli/credentials answer as a cache entry; ClientError if it is not one."""
    from datetime import UTC, datetime

    creds = {"Version": 1, **{f: answer.get(f) for f in FIELDS}}
    if answer.get("Version") != 1 or not all(isinstance(creds[f], str) and creds[f] for f in FIELDS):
        raise ClientError("the broker's credentials answer is not in credential_process form")
    try:
        expiry = datetime.fromisoformat(str(creds["Expiration"]))
    except ValueError:
        raise ClientError("the broker's credentials answer has no valid Expiration") from None
    expires_at = (expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)).timestamp()
    if expires_at <= now:
        raise ClientError("the broker answered with credentials that have already expired")
    return Entry(credentials=creds, issued_at=now, expires_at=expires_at)


def credentials(cache_dir: str, session: SessionInfo, role: str, duration: int | None,
                fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fresh credentials for `role`: from the cache, else from `fetch` (one process at a time)."""
    path = cache_file(files.private_dir(cache_dir), role, duration)
    entry = read(path, session, role)
    if entry is not None and entry.fresh(time.time()):
        return entry.credentials
    with locked(path.removesuffix(".json") + ".lock"):
        entry = read(path, session, role, quiet=True)  # another process may have refreshed meanwhile
        if entry is not None and entry.fresh(time.time()):
            return entry.credentials
        entry = as_entry(fetch(), time.time())
        write(path, session, role, entry)
        return entry.credentials


def clear(cache_dir: str) -> int:
    """Remove every cache and lock file (logout, a new login); returns how many."""
    try:
        names = os.listdir(cache_dir)
    except FileNotFoundError:
        return 0
    return sum(files.remove(os.path.join(cache_dir, n)) for n in names if n.endswith((".json", ".lock", ".tmp")))
