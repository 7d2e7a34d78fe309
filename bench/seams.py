"""Each third-party seam (broker/seams/) against the library's public path, in the same process and run.

    python -m bench.seams            (make bench runs it)

The team rule: a seam stays only where the public path is more than 5% slower, measured here, in the same run.

- python3-saml (broker/seams/python3_saml.py): the broker's whole ACS path for one genuine response (as
  bench/saml_acs.py's "broker" figure) as shipped, against the same path with one piece replaced by the
  library's public code: `OneLogin_Saml2_Response(settings, base64)` instead of `ParsedResponse`, or one
  of the cached_validation pieces (schema, xpath, keys, time) left stock; and with everything stock.
- uvicorn (broker/seams/uvicorn.py): server CPU per request (the server thread's own CPU clock) for a
  small JSON answer over a keep-alive loopback connection, under `HttpProtocol` as shipped, under
  `HttpProtocol` with its writes not joined (the head limits alone), and under uvicorn's own
  `HttpToolsProtocol`: once with one sequential client in this process, once under wrk (its own process,
  WRK_CONNECTIONS connections), the shape bench/token_exchange.py loads the broker with.

Rounds are interleaved and each variant's best is kept, so a busy neighbour hurts all alike. Printed: time
per call and the cost of each variant against the shipped one (+x% = the variant is slower; past +5% "the
seam pays"). uvicorn's stock protocol is shown for scale only: it lacks the head limits, a security
control the seam keeps whatever it costs; the 5% rule applies to the joined writes (shipped vs not joined),
measured under wrk, the loaded shape the broker is sized for (one sequential connection shows the extra
loop turn a joined write waits for, not the saved send).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from onelogin.saml2.response import OneLogin_Saml2_Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

import broker.connectors.saml as saml_module
from bench.saml_acs import AcsPath, build, corpus
from broker.devstack.servers import LOOPBACK, free_port
from broker.seams import python3_saml
from broker.seams.uvicorn import HttpProtocol

ROUNDS, SAML_CALLS, HTTP_CALLS, MAX_SECONDS = 7, 60, 400, 60.0
THRESHOLD = 5.0  # percent
WRK_CONNECTIONS, WRK_SECONDS = 32, 2


def _interleaved(variants: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Each variant's best (lowest) seconds per call over interleaved rounds."""
    best = {name: float("inf") for name in variants}
    deadline = time.perf_counter() + MAX_SECONDS
    for _ in range(rounds):
        for name, run in variants.items():
            best[name] = min(best[name], run())
        if time.perf_counter() > deadline:
            break
    return best


# ---- python3-saml ---------------------------------------------------------------------------------------


@contextmanager
def _saml_variant(public_parse: bool, pieces: frozenset[str]) -> Iterator[None]:
    """The connector's ACS code with the chosen parts of the seam replaced by the library's public path."""
    namespace = vars(saml_module)  # the names the connector's ACS code looks up when it runs
    stock = dict(namespace)
    if public_parse:
        def public(settings: Any, raw: bytes, root: Any) -> Any:
            return OneLogin_Saml2_Response(settings, _TEXT[raw])
        namespace["ParsedResponse"] = public
    namespace["cached_validation"] = functools.partial(python3_saml.cached_validation, pieces)
    try:
        yield
    finally:
        namespace["ParsedResponse"], namespace["cached_validation"] = (stock["ParsedResponse"],
                                                                       stock["cached_validation"])


_TEXT: dict[bytes, str] = {}  # raw response -> its base64, as the public constructor takes it


def saml_variants(path: AcsPath, b64: str) -> dict[str, Callable[[], float]]:
    _TEXT[base64.b64decode(b64)] = b64
    every = python3_saml.PIECES
    shapes: dict[str, tuple[bool, frozenset[str]]] = {"shipped": (False, every), "public parse": (True, every)}
    shapes |= {f"stock {piece}": (False, every - {piece}) for piece in sorted(every)}
    shapes["all stock"] = (True, frozenset())

    def run(public_parse: bool, pieces: frozenset[str]) -> float:
        with _saml_variant(public_parse, pieces):
            return 1.0 / path.rate(b64, SAML_CALLS)
    return {name: functools.partial(run, *shape) for name, shape in shapes.items()}


def saml_report() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-seams-") as tmp:
        s = build(Path(tmp))
        path = AcsPath(s)
        try:
            b64 = corpus(s)[0][1]
            variants = saml_variants(path, b64)
            for run in variants.values():
                run()  # warm every variant (schema compiled, keys loaded) before measuring
            return _interleaved(variants, ROUNDS)
        finally:
            path.close()


# ---- uvicorn ---------------------------------------------------------------------------------------------


class _Unjoined(HttpProtocol):
    """HttpProtocol's head limits without joining writes: uvicorn's own transport writes."""

    join_writes = False


async def _small(request: Request) -> Response:
    return JSONResponse({"access_token": "x" * 40, "token_type": "N_A", "expires_in": 3600})


APP = Starlette(routes=[Route("/t", _small)])
REQUEST = b"GET /t HTTP/1.1\r\nHost: bench\r\n\r\n"


@contextmanager
def _server(protocol: type[asyncio.Protocol]) -> Iterator[tuple[int, int]]:
    """A uvicorn server on a loopback thread; yields its port and its thread's CPU clock id."""
    port = free_port()
    config = uvicorn.Config(APP, host=LOOPBACK, port=port, log_level="warning", access_log=False,
                            lifespan="off", http=protocol, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        assert thread.ident is not None
        yield port, time.pthread_getcpuclockid(thread.ident)
    finally:
        server.should_exit = True
        thread.join(10)


def _cpu_per_request(port: int, clock: int) -> float:
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.clock_gettime(clock)
        for _ in range(HTTP_CALLS):
            sock.sendall(REQUEST)
            _read_one(sock)
        return (time.clock_gettime(clock) - start) / HTTP_CALLS


def _read_one(sock: socket.socket) -> None:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(sock)
    head, _, body = buffer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += _recv(sock)


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("server closed the connection")
    return data


def _cpu_per_request_wrk(port: int, clock: int) -> float:
    """The server thread's CPU per request while wrk (its own process) keeps WRK_CONNECTIONS busy."""
    start = time.clock_gettime(clock)
    out = subprocess.run(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s", f"http://{LOOPBACK}:{port}/t"],
                         capture_output=True, text=True, timeout=WRK_SECONDS + 20, check=True).stdout
    used = time.clock_gettime(clock) - start
    match = re.search(r"(\d+) requests in", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk run failed: {out[-300:]}")
    return used / int(match.group(1))


def uvicorn_report(measure: Callable[[int, int], float]) -> dict[str, float]:
    protocols = {"shipped": HttpProtocol, "writes not joined": _Unjoined, "uvicorn stock": HttpToolsProtocol}
    with _server(HttpProtocol) as a, _server(_Unjoined) as b, _server(HttpToolsProtocol) as c:
        servers = dict(zip(protocols, (a, b, c), strict=True))
        variants = {name: functools.partial(measure, *servers[name]) for name in protocols}
        for run in variants.values():
            run()
        return _interleaved(variants, ROUNDS)


def _print(title: str, best: dict[str, float]) -> None:
    shipped = best["shipped"]
    print(f"{title:<24}{'us/call':>10}{'vs shipped':>12}")
    for name, seconds in best.items():
        delta = 100.0 * (seconds - shipped) / shipped
        verdict = "" if name == "shipped" else ("  the seam pays" if delta > THRESHOLD else "  within 5%")
        print(f"  {name:<22}{seconds * 1e6:>10.1f}{delta:>+11.1f}%{verdict}")


def main() -> int:
    _print("python3-saml ACS path", saml_report())
    _print("uvicorn, 1 connection", uvicorn_report(_cpu_per_request))
    if shutil.which("wrk"):
        _print(f"uvicorn, wrk -c{WRK_CONNECTIONS}", uvicorn_report(_cpu_per_request_wrk))
    else:
        print("wrk missing (make wrk): the loaded uvicorn comparison was not run")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
