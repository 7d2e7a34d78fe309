"""Run WSGI and ASGI servers on loopback threads, for the demo and tests. Bounded start-up waits."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
import werkzeug.serving

from broker.seams.uvicorn import HttpProtocol

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def wsgi_server(app: Any, port: int = 0) -> Iterator[int]:
    # Werkzeug logs every request line, query strings (states, nonces) included: keep the demo quiet.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = werkzeug.serving.make_server(LOOPBACK, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def asgi_server(app: Any, port: int = 0, startup_timeout: float = 15.0,
                protocol: type[asyncio.Protocol] = HttpProtocol) -> Iterator[int]:
    port = port or free_port()
    # The protocol `sts-broker serve` runs, so tests and the demo go through the same server code.
    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", access_log=False,
                            lifespan="on", http=protocol, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"ASGI server did not start on {LOOPBACK}:{port}")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def send_json(handler: BaseHTTPRequestHandler, body: Any, headers: Mapping[str, str] | None = None) -> None:
    """A 200 JSON answer from a BaseHTTPRequestHandler (the small hand-made peers of tests and benchmarks)."""
    data = json.dumps(body).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threading http.server on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
