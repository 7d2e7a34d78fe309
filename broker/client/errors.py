"""The client's own errors. They never reach the broker's HTTP error tables or its audit log: each is one
line on stderr and an exit code. (broker/errors.py is the server's tree; importing it would also import
`secrets` on the credential-process path for nothing.)"""

from __future__ import annotations


class ClientError(Exception):
    """Printed as `sts-broker: <message>`; the process exits with `exit_code`."""

    exit_code = 1


class SessionEnded(ClientError):
    """The broker session is over (expired, logged out, revoked) or there is none: log in again."""

    exit_code = 2

    def __init__(self, broker: str | None, what: str = "your broker session has ended") -> None:
        url = f" --broker {broker}" if broker else " --broker URL"
        super().__init__(f"{what}; run sts-broker login{url}")


class Refused(ClientError):
    """A local file that is not ours to trust (wrong owner or mode, a symbolic link, not what we wrote)."""
