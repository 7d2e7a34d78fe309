"""An STS that misbehaves on cue: each request takes the next step of a script (stall, answer an AWS error,
answer garbage, close the connection, or pass the request on to the strict local AWS and return its answer).
It records when each request arrived, so a test can see how many attempts the broker made and how far apart."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from broker.devstack.servers import LOOPBACK

ERROR = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
         "<Code>{code}</Code><Message>{message}</Message></Error><RequestId>faulty</RequestId></ErrorResponse>")


@dataclass(frozen=True)
class Step:
    kind: str  # stall | error | garbage | close | forward
    status: int = 200
    code: str = ""
    body: bytes = b""
    seconds: float = 0.0


def stall(seconds: float) -> Step:
    return Step("stall", seconds=seconds)


def error(status: int, code: str, message: str = "refused by the faulty STS") -> Step:
    return Step("error", status=status, body=ERROR.format(code=code, message=message).encode())


def garbage(status: int, body: bytes) -> Step:
    return Step("garbage", status=status, body=body)


CLOSE = Step("close")
FORWARD = Step("forward")


@dataclass
class FaultySts:
    forward_to: str  # the strict local AWS's STS endpoint
    script: list[Step] = field(default_factory=list)
    then: Step = FORWARD  # once the script is used up
    arrivals: list[float] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def play(self, *steps: Step, then: Step = FORWARD) -> None:
        with self._lock:
            self.script, self.then, self.arrivals = list(steps), then, []

    def next_step(self) -> Step:
        with self._lock:
            self.arrivals.append(time.monotonic())
            return self.script.pop(0) if self.script else self.then


def _handler(sts: FaultySts) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            step = sts.next_step()
            if step.kind == "stall":
                time.sleep(step.seconds)
                self.close_connection = True
                return
            if step.kind == "close":
                self.close_connection = True
                return
            if step.kind == "forward":
                status, answer = self._forward(body)
            else:
                status, answer = step.status, step.body
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def _forward(self, body: bytes) -> tuple[int, bytes]:
            # Host as the broker sent it: a signed call (AssumeRole) is signed over it, and the strict local AWS
            # recomputes the signature from the request as it arrives.
            headers = dict(self.headers.items())
            request = urllib.request.Request(sts.forward_to, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_faulty_sts(forward_to: str) -> Iterator[FaultySts]:
    sts = FaultySts(forward_to)
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(sts))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sts.url = f"http://{LOOPBACK}:{server.server_address[1]}/"
    try:
        yield sts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
