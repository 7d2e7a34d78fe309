"""`sts-broker serve`'s listener and shutdown options. The listener's defaults come from the environment so
that the container image sets them once (`STS_BROKER_CONFIG`, `STS_BROKER_HOST`, `STS_BROKER_PORT`) and its
health check (`sts-broker healthcheck`, which reads `STS_BROKER_PORT`) probes the port the broker listens on."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from broker.healthcheck import DEFAULT_PORT, PORT_ENV

CONFIG_ENV = "STS_BROKER_CONFIG"
HOST_ENV = "STS_BROKER_HOST"
# Kubernetes' default terminationGracePeriodSeconds is 30: a drain and a deadline that fit within it.
DEFAULT_DEADLINE = 25


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("seconds between 0 and 3600")
    return value


def _whole_seconds(text: str) -> int:
    value = int(text)  # uvicorn's timeout_graceful_shutdown is whole seconds
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("whole seconds between 0 and 3600")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port number")
    return value


def add_config(parser: argparse.ArgumentParser) -> None:
    """--config for serve and check: in the image, both find /config/broker.yaml without it."""
    parser.add_argument("--config", type=Path, default=Path(os.environ.get(CONFIG_ENV) or "broker.yaml"),
                        help=f"default: ${CONFIG_ENV}, else broker.yaml")


def serve_defaults(serve: argparse.ArgumentParser) -> None:
    env = os.environ
    add_config(serve)
    serve.add_argument("--host", default=env.get(HOST_ENV) or "127.0.0.1", help=f"default: ${HOST_ENV}, else 127.0.0.1")
    # A string default goes through `type` when serve's arguments are parsed: a bad $STS_BROKER_PORT is then
    # serve's usage error, not a traceback of every command.
    serve.add_argument("--port", type=_port, default=env.get(PORT_ENV) or str(DEFAULT_PORT),
                       help=f"default: ${PORT_ENV}, else {DEFAULT_PORT}")
    serve.add_argument("--drain", type=_seconds, default=0.0, metavar="SECONDS",
                       help="on SIGTERM, /readyz answers 503 at once and the listener stays open this long, so "
                            "load balancers stop sending before it closes (default 0)")
    serve.add_argument("--shutdown-deadline", type=_whole_seconds, default=DEFAULT_DEADLINE, metavar="SECONDS",
                       help="after the drain, requests in flight get this long to finish before they are "
                            f"cancelled (default {DEFAULT_DEADLINE})")
