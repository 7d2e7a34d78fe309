"""SIGTERM to `sts-broker serve` (a real process on the example config): /readyz goes 503 at once while the
listener stays open for `--drain`; then new connections are refused, a request in flight still gets its
answer within `--shutdown-deadline`, and the process exits 0. A request that outlives the deadline is cut
and the exit still comes on time."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from broker.devstack.servers import free_port
from tests.deploy.broker_process import STS_BROKER, broker_env, config_tree, get, start, stop, wait_ready

DRAIN = 1.5
DEADLINE = 4
BODY = b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=x"


def _serve(tmp: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    config = config_tree(tmp / "config")
    log = tmp / "serve.log"
    process = start([STS_BROKER, "serve", "--config", str(config), "--port", str(port), "--drain", str(DRAIN),
                     "--shutdown-deadline", str(DEADLINE)], broker_env(), log)
    return process, log


def _start_request(port: int) -> socket.socket:
    """A token request whose head and half its body are sent: the app has it and waits for the rest."""
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: broker.example.com\r\n"
                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                 b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY[:20])
    return held


def _read_response(held: socket.socket) -> bytes:
    chunks = []
    while chunk := held.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_drains_then_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    port = free_port()
    process, log = _serve(tmp_path, port)
    try:
        wait_ready(port, process, log)
        held = _start_request(port)
        time.sleep(0.3)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)

        status, body = get(port, "/readyz")  # at once, on a new connection: the listener is still open
        assert (status, json.loads(body)) == (503, {"ready": False, "checks": {"shutdown": "draining"}})
        assert time.monotonic() - signalled < DRAIN
        assert get(port, "/healthz")[0] == 200  # other requests are still served during the drain

        while not _refused(port):  # the listener closes once the drain is over
            assert time.monotonic() - signalled < DRAIN + 2.0, "the listener stayed open past the drain"
            time.sleep(0.05)
        assert time.monotonic() - signalled >= DRAIN - 0.1
        assert process.poll() is None  # the held request keeps it running

        held.sendall(BODY[20:])
        answer = _read_response(held)
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 400 "), answer  # the app's own answer to that token request
        assert b"connection: close" in head
        assert process.wait(DEADLINE + 2) == 0
        assert time.monotonic() - signalled < DRAIN + DEADLINE
    finally:
        stop(process)
    text = log.read_text()  # the request was answered after the listener closed, before the exit
    assert text.index("Shutting down") < text.index("POST /oauth2/token 400") < text.index("Finished server process")


def test_a_request_past_the_deadline_is_cut_and_the_exit_is_on_time(tmp_path: Path) -> None:
    port = free_port()
    process, log = _serve(tmp_path, port)
    try:
        wait_ready(port, process, log)
        held = _start_request(port)  # never completed
        time.sleep(0.3)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(DRAIN + DEADLINE + 3) == 0
        took = time.monotonic() - signalled
        assert DRAIN + DEADLINE - 0.2 <= took < DRAIN + DEADLINE + 2.5, took  # the slack: process teardown
        held.settimeout(2)
        assert _read_response(held).startswith(b"HTTP/1.1 500 ")  # uvicorn's answer for a cancelled request
    finally:
        stop(process)
    assert "timeout graceful shutdown exceeded" in log.read_text()


def test_with_a_metrics_listener_both_stop_and_the_exit_is_0(tmp_path: Path) -> None:
    """The metrics listener (metrics.listen) is a second uvicorn server: it stops after the main one, once
    uvicorn hands the signal back to it, and the process still exits 0."""
    port, metrics_port = free_port(), free_port()
    config = config_tree(tmp_path / "config")
    config.write_text(config.read_text() + f"metrics: {{listen: '127.0.0.1:{metrics_port}'}}\n")
    log = tmp_path / "serve.log"
    process = start([STS_BROKER, "serve", "--config", str(config), "--port", str(port), "--drain", "0.5",
                     "--shutdown-deadline", "2"], broker_env(), log)
    try:
        wait_ready(port, process, log)
        assert get(metrics_port, "/metrics")[0] == 200
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert get(port, "/readyz")[0] == 503
        assert process.wait(5) == 0, log.read_text()
        assert time.monotonic() - signalled < 0.5 + 2 + 1
        assert _refused(port) and _refused(metrics_port)
    finally:
        stop(process)
    assert log.read_text().count("Finished server process") == 2
