"""Start-up imports only what serving the first request needs: boto3 only when it is the configured STS
transport, botocore (the SigV4 signer, the credential chain) and jinja2 (pages) on first use or from the preload
thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEFERRED_ROOTS = ("boto3", "botocore", "s3transfer", "jinja2")


def _loaded_after(code: str) -> list[str]:
    roots = repr(DEFERRED_ROOTS)
    script = (f"import json, sys\n{code}\n"
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {roots})))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    return list(json.loads(done.stdout))


def test_the_start_path_imports_no_aws_sdk() -> None:
    assert _loaded_after("import broker.config, broker.service, broker.web.app, broker.cli") == []


def test_the_preload_imports_what_first_requests_need() -> None:
    loaded = _loaded_after("from broker.warmup import preload\npreload()\n"
                           "from broker.issuers.sts_http import tls_context\n"
                           "assert tls_context.cache_info().currsize == 1")
    assert {"botocore.auth", "botocore.session", "botocore.credentials", "jinja2"} <= set(loaded)
    assert "boto3" not in loaded


def test_server_commands_switch_pydantic_plugins_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from broker.cli import main

    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    main(["check", "--config", str(tmp_path / "absent.yaml")])
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "")  # what a deployment sets is kept
    main(["check", "--config", str(tmp_path / "absent.yaml")])
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == ""


PRELOAD_SCRIPT = """
import os, secrets, sys, tempfile, time
from pathlib import Path
os.environ.update(SESSION_SECRET=secrets.token_urlsafe(48), OKTA_SECRET="okta-client-secret-value")
from starlette.testclient import TestClient
from broker.config import load_settings
from broker.warmup import PRELOAD_AFTER
from broker.web.app import create_app
from tests.test_config_check import tree

with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(load_settings(tree(Path(tmp))))) as client:
    assert client.get("/readyz").status_code == 200
    before = any(name in sys.modules for name in ("botocore.auth", "jinja2", "httpcore"))
    deadline = time.monotonic() + PRELOAD_AFTER + 20
    while "httpcore" not in sys.modules and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    print(before, all(name in sys.modules for name in ("botocore.auth", "jinja2", "httpcore")))
"""


def test_the_app_preloads_after_it_starts() -> None:
    """Ready without botocore, jinja2 or httpcore (the outbound client's transport); the preload thread brings
    them in once the app has started."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", PRELOAD_SCRIPT], capture_output=True, text=True, check=True,
                          timeout=120, cwd=root)
    assert done.stdout.split() == ["False", "True"]


def test_the_lazy_transport_serves_requests_and_closes() -> None:
    """The outbound client with its transport built on first use sends a real request (to a loopback server)."""
    script = """
import asyncio, http.server, sys, threading
from broker.http_client import outbound_client

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "5"); self.end_headers(); self.wfile.write(b"hello")
    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Hello)
threading.Thread(target=server.serve_forever, daemon=True).start()

async def main():
    client = outbound_client(5.0)
    before = "httpcore" in sys.modules
    response = await client.get(f"http://127.0.0.1:{server.server_port}/")
    await client.aclose()
    print(before, response.status_code, response.text)

asyncio.run(main())
server.shutdown()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["False", "200", "hello"]
