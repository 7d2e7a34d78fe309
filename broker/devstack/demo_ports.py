"""The demo's fixed loopback ports, checked before anything starts: a busy one is a single line naming the
flag that moves it (`port 8000 is in use: pass --port N`) and exit status 2, never a traceback from deep in
a server (uvicorn's thread, werkzeug's sys.exit)."""

from __future__ import annotations

import argparse
import errno
import socket

LOOPBACK = "127.0.0.1"  # as servers.LOOPBACK; not imported: `sts-broker --help` needs no devstack extra

# argparse dest -> (the flag, what listens there, its default): also what `demo --help` and the README say.
DEMO_PORTS: dict[str, tuple[str, str, int]] = {
    "port": ("--port", "the broker", 8000),
    "idp_port": ("--idp-port", "the development OIDC provider", 9400),
    "saml_port": ("--saml-port", "the development SAML IdP", 9401),
    "aws_port": ("--aws-port", "the strict local AWS (STS, IAM, S3, console federation)", 4566),
}
USAGE_ERROR = 2  # argparse's status for a bad command line: the remedy is a flag


def add_port_flags(parser: argparse.ArgumentParser) -> None:
    for dest, (flag, what, default) in DEMO_PORTS.items():
        parser.add_argument(flag, dest=dest, type=int, default=default, metavar="N",
                            help=f"loopback port of {what} (default {default})")


def in_use(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers bind (SO_REUSEADDR): a port left in TIME_WAIT by a previous demo is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_problem(args: argparse.Namespace) -> str | None:
    """The first reason the demo cannot bind its ports, as one line, or None."""
    seen: dict[int, str] = {}
    for dest, (flag, _, _) in DEMO_PORTS.items():
        port: int = getattr(args, dest)
        if not 0 < port < 65536:
            return f"{flag} {port} is not a port number: pass {flag} N with N from 1 to 65535"
        if port in seen:
            return f"{seen[port]} and {flag} are both {port}: pass {flag} N with another port"
        seen[port] = flag
        if in_use(port):
            return f"port {port} is in use: pass {flag} N"
    return None
