"""Oversize heads and bodies, and slow clients, against a real `sts-broker serve` over raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from broker.seams.uvicorn import HEAD_TIMEOUT, MAX_HEAD_BYTES, MAX_HEADER_FIELDS
from tests.flows.test_forwarded import config_tree, serving

FAST = 2.0  # seconds: a refusal is answered at once, not after reading what was announced


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with serving(config_tree(tmp_path_factory.mktemp("limits"))) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def exchange_raw(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[bytes, float]:
    """Send a request as bytes; the first bytes of the answer and how long it took."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)  # refused while still sending: the answer may already be there
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b"reset"
    return answer, time.monotonic() - started


def healthy(address: tuple[str, int]) -> float:
    started = time.monotonic()
    assert httpx.get(f"http://{address[0]}:{address[1]}/healthz", timeout=5).status_code == 200
    return time.monotonic() - started


HEADS = {
    "one_huge_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n",
    "ten_megabyte_header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000_000 + b"\r\n\r\n",
    "too_many_fields": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                       + b"".join(b"X-F%d: v\r\n" % n for n in range(MAX_HEADER_FIELDS + 1)) + b"\r\n",
    "huge_url": b"GET /" + b"a" * (MAX_HEAD_BYTES + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "huge_cookie": b"GET /roles HTTP/1.1\r\nHost: x\r\nCookie: sts_broker_session=" + b"a" * 40_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_oversize_heads_get_431_fast(served: tuple[str, int], name: str) -> None:
    answer, took = exchange_raw(served, HEADS[name])
    assert answer.startswith(b"HTTP/1.1 431 ") or (answer == b"reset" and name == "ten_megabyte_header")
    assert took < FAST and b"Traceback" not in answer
    assert healthy(served) < FAST


def test_a_head_just_under_the_limits_is_served(served: tuple[str, int]) -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (n, b"v" * 200) for n in range(MAX_HEADER_FIELDS - 2))
    answer, _ = exchange_raw(served, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("path", ["/oauth2/token", "/saml/nope/acs", "/admin/rules/explain", "/logout",
                                  "/roles/credentials"])
def test_an_announced_oversize_body_is_refused_before_it_is_sent(served: tuple[str, int], path: str) -> None:
    """Content-Length of 50 MB and not a byte of it sent: the answer comes at once (nothing waits to read
    it, nothing buffers it)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Accept: application/json\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n").encode()
    answer, took = exchange_raw(served, head)
    status = int(answer.split(b" ", 2)[1])
    assert status in (401, 404, 413) and took < FAST, answer[:200]
    if path == "/oauth2/token":
        assert status == 413 and b'"invalid_request"' in answer


def test_a_chunked_body_past_the_cap_is_refused(served: tuple[str, int]) -> None:
    head = (b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)) + b"0\r\n\r\n"
    answer, took = exchange_raw(served, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413 ") and took < FAST


def test_slow_clients_do_not_stop_others_and_are_cut_off(served: tuple[str, int]) -> None:
    """A slowloris: many connections each sending part of a head and then a byte now and then. Another
    client is answered at once throughout; each slow connection is closed HEAD_TIMEOUT after its head began
    (a keep-alive connection's second head too: uvicorn's keep-alive timeout stops once bytes arrive)."""
    slow: list[socket.socket] = []
    try:
        for n in range(100):
            sock = socket.create_connection(served, timeout=HEAD_TIMEOUT + 10)
            if n % 10 == 0:  # a keep-alive connection: one whole request first, then the slow head
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        opened = time.monotonic()
        latencies = []
        while time.monotonic() - opened < HEAD_TIMEOUT - 2:
            for sock in slow[::10]:
                sock.sendall(b"X")  # a trickle, never the end of the head
            latencies.append(healthy(served))
            time.sleep(0.5)
        assert max(latencies) < 1.0, latencies
        for sock in slow:
            assert sock.recv(100) == b""  # closed by the broker, no answer
        assert time.monotonic() - opened < HEAD_TIMEOUT + 5
    finally:
        for sock in slow:
            sock.close()
    assert healthy(served) < FAST
