"""`sts-broker login`: the authorization code grant with PKCE through a loopback redirect (RFC 7636, RFC 8252),
or the device authorization grant (RFC 8628) where no browser can reach back to this machine.

The loopback listener binds 127.0.0.1 on a port the system picks, serves the one redirect it waits for (other
paths get a 404) and closes; the state must match and the code is exchanged with the verifier only this
process knows, so a code caught elsewhere is worth nothing."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import sys
import threading
import time
import urllib.parse
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from broker.client.errors import ClientError
from broker.client.http import Broker, refusal

CLIENT_ID = "sts-broker-cli"
CALLBACK = "/callback"
LOOPBACK_WAIT = 300.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MAX_POLLS = 400
OPEN_WAIT = 2.0

DONE_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>sts-broker</title></head>
<body style="font-family:sans-serif;margin:3em"><h1>%s</h1><p>%s</p></body></html>"""

Opener = Callable[[str], bool]


def device_name() -> str:
    name = "".join(c for c in socket.gethostname() if c.isprintable())
    return f"sts-broker on {name}"[:64]


def browser_opener() -> Opener | None:
    """The system's browser ($BROWSER, xdg-open, open, ...), None when there is none. It is started on a
    thread: some openers wait for the browser to exit, and the loopback listener must be answering by then.
    An opener that fails within OPEN_WAIT seconds (a $BROWSER that does not exist) counts as no browser."""
    try:
        controller = webbrowser.get()
    except webbrowser.Error:
        return None

    def open_url(url: str) -> bool:
        opened: list[bool] = []
        thread = threading.Thread(target=lambda: opened.append(controller.open(url)), daemon=True)
        thread.start()
        thread.join(OPEN_WAIT)
        return opened != [False]
    return open_url


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _Listener(HTTPServer):
    result: dict[str, str] | None = None


class _Callback(BaseHTTPRequestHandler):
    server: _Listener

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != CALLBACK:
            self.send_error(404)
            return
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        self.server.result = query
        ok = "code" in query and "error" not in query
        title, text = ((b"Signed in", b"You can close this tab and go back to the terminal.") if ok else
                       (b"Sign-in not completed", b"Go back to the terminal for details."))
        body = DONE_PAGE % (title, text)
        self.send_response(200)
        for name, value in (("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), ("Connection", "close"),
                            ("Content-Security-Policy", "default-src 'none'")):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request line carries the code: never printed


def _wait(listener: _Listener) -> dict[str, str]:
    listener.timeout = 1.0
    deadline = time.monotonic() + LOOPBACK_WAIT
    while listener.result is None:
        if time.monotonic() > deadline:
            raise ClientError("no answer from the browser within 5 minutes; run sts-broker login again")
        listener.handle_request()
    return listener.result


def loopback(broker: Broker, opener: Opener | None) -> dict[str, Any] | None:
    """The token endpoint's answer after a browser sign-in; `opener` None prints the URL instead. None when
    the browser could not be opened (the caller falls back to the device grant)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    with _Listener(("127.0.0.1", 0), _Callback) as listener:
        redirect_uri = f"http://127.0.0.1:{listener.server_port}{CALLBACK}"
        url = broker.url + "/oauth2/authorize?" + urllib.parse.urlencode({
            "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect_uri,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": state,
            "device_name": device_name()})
        if opener is None:
            print(f"Open this URL in a browser on this machine to sign in:\n\n  {url}\n", file=sys.stderr)
        elif not opener(url):
            return None
        else:
            print(f"Opened the browser to sign in; if it did not open, visit:\n\n  {url}\n", file=sys.stderr)
        result = _wait(listener)
    if not secrets.compare_digest(result.get("state", "").encode(), state.encode()):
        raise ClientError("the browser came back with the wrong state: refused (run sts-broker login again)")
    if "error" in result or "code" not in result:
        raise ClientError(f"sign-in not completed: {result.get('error', 'no code')}")
    return _token(broker, {"grant_type": "authorization_code", "code": result["code"],
                           "redirect_uri": redirect_uri, "client_id": CLIENT_ID, "code_verifier": verifier})


def _token(broker: Broker, form: dict[str, str]) -> dict[str, Any]:
    status, data = broker.send("POST", "/oauth2/token", form=form)
    if status != 200:
        raise ClientError(f"login failed: {refusal(status, data)}")
    return data


def device(broker: Broker, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    status, start = broker.send("POST", "/oauth2/device_authorization",
                                form={"client_id": CLIENT_ID, "device_name": device_name()})
    if status != 200 or not isinstance(start.get("device_code"), str):
        raise ClientError(f"login failed: {refusal(status, start)}")
    interval = float(start.get("interval") or 5)
    deadline = time.monotonic() + float(start.get("expires_in") or 600)
    print(f"To sign in, open {start.get('verification_uri')} and enter the code {start.get('user_code')}\n"
          f"(or open {start.get('verification_uri_complete')})\nWaiting for approval...", file=sys.stderr)
    form = {"grant_type": DEVICE_GRANT, "device_code": start["device_code"], "client_id": CLIENT_ID}
    for _ in range(MAX_POLLS):
        sleep(interval)
        status, data = broker.send("POST", "/oauth2/token", form=form)
        error = data.get("error")
        if status == 200:
            return data
        if error == "slow_down":
            interval += 5  # RFC 8628 section 3.5
        elif error != "authorization_pending":
            raise ClientError(f"login failed: {refusal(status, data)}")
        if time.monotonic() > deadline:
            break
    raise ClientError("the code expired before it was approved; run sts-broker login again")
