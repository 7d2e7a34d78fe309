"""A SAML IdP's metadata URL down or answering garbage: with no good metadata held, /readyz names the IdP and
its fault, and a sign-in there is a clear 502 (no redirect to anywhere the broker could not verify); once the
metadata answers, the same process signs in there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.devstack.servers import http_server
from broker.devstack.stack import DevStack
from broker.settings import ReadinessConfig
from tests.faults.conftest import assert_refused
from tests.support.own_stack import moved, scrape, variant

JSON = {"Accept": "application/json"}


@dataclass
class Metadata:
    status: int = 200
    body: bytes = b""
    requests: int = 0


@contextmanager
def metadata_server(metadata: Metadata) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            metadata.requests += 1
            self.send_response(metadata.status)
            self.send_header("Content-Type", "application/samlmetadata+xml")
            self.send_header("Content-Length", str(len(metadata.body)))
            self.end_headers()
            self.wfile.write(metadata.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_server(Handler) as url:
        yield f"{url}/metadata.xml"


@contextmanager
def broker_with_metadata_idp(stack: DevStack, tmp_path: Path, metadata: Metadata) -> Iterator[str]:
    idps = tmp_path / "idp_configs"
    shutil.copytree(stack.settings.idp_configs, idps)
    config = yaml.safe_load((idps / "devsamlpost.yaml").read_text())
    config.pop("metadata_file")
    with metadata_server(metadata) as metadata_url:
        (idps / "meta.yaml").write_text(yaml.safe_dump({**config, "id": "meta", "name": "From its URL",
                                                        "metadata_url": metadata_url, "timeout": "2s"}))
        with variant(stack, idp_configs=idps, readiness=ReadinessConfig(require_idps=True)) as url:
            yield url


@pytest.mark.parametrize(("status", "body", "reason"), [
    (503, b"", "saml_metadata_http_error"),
    (200, b"<html><body>Sign in to continue</body></html>", "saml_metadata_invalid"),
    (200, b"\x00\x01 not xml", "saml_metadata_invalid"),
    (200, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "saml_metadata_invalid"),
])
def test_metadata_broken_is_a_502_and_not_ready(stack: DevStack, tmp_path: Path, status: int, body: bytes,
                                                reason: str) -> None:
    good = (stack.workdir / "saml-idp" / "metadata.xml").read_bytes()
    metadata = Metadata(status, body)
    with broker_with_metadata_idp(stack, tmp_path, metadata) as url:
        before = scrape(url)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["idps"] == {"dev": "ok", "meta": reason}
        refused = httpx.get(f"{url}/login/meta", headers=JSON)
        assert_refused(stack, refused, 502, reason)
        assert "location" not in refused.headers
        assert moved(before, scrape(url), "sts_broker_idp_refreshes_total", idp="meta", kind="saml_metadata",
                     outcome=reason) >= 1
        metadata.status, metadata.body = 200, good
        started = httpx.get(f"{url}/login/meta", headers=JSON)
        assert started.status_code == 200 and "SAMLRequest" in started.text  # the POST binding's form
