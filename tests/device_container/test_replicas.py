"""Two broker replicas sharing one Redis (a real redis-server): a device code asked for on one replica is
approved on the other and redeemed once across both; a container token made on one replica works on the
other (botocore's ContainerProvider at the strict local AWS) and, revoked on one, is refused by both."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher
from pydantic import SecretStr

from broker.audit import AuditLog
from broker.devstack import browser
from broker.devstack.device_login import decide, new_code, poll
from broker.devstack.redis_server import running_redis
from broker.devstack.servers import LOOPBACK, asgi_server, free_port
from broker.devstack.stack import DevStack, aws_client
from broker.web.app import create_app
from tests.device_container.conftest import ACCOUNT
from tests.device_container.device import signed_in, trust_another_url

DEV = f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper"


@pytest.fixture
def replicas(dc_stack: DevStack) -> Iterator[tuple[str, str]]:
    """Replica A answers at the public URL; replica B is reached directly, as a load balancer would."""
    with running_redis() as redis, ExitStack() as servers:
        port_a, port_b = free_port(), free_port()
        public = f"http://{LOOPBACK}:{port_a}"
        settings = dc_stack.settings.model_copy(update={
            "public_url": public, "store": dc_stack.settings.store.model_copy(update={"url": SecretStr(redis.url)})})
        for port in (port_a, port_b):
            servers.enter_context(asgi_server(create_app(settings, audit=AuditLog(str(dc_stack.audit_path))), port))
        trust_another_url(dc_stack, public)
        yield public, f"http://{LOOPBACK}:{port_b}"


def test_device_login_and_container_credentials_across_replicas(dc_stack: DevStack,
                                                                 replicas: tuple[str, str]) -> None:
    a, b = replicas
    code = new_code(a, "replicated")
    with signed_in(a, "bob") as client:  # signed in on A; the cookie (host, not port) reaches B as well
        assert decide(client, b, code["user_code"]).status_code == 200  # confirmed and approved on B
        login = poll(a, code["device_code"])
        assert login.status_code == 200, login.text
        again = poll(b, code["device_code"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        made = httpx.post(f"{b}/cli/container-tokens", json={"role": DEV}, headers=bearer, timeout=10)
        assert made.status_code == 200, made.text
        token = made.json()
        assert token["full_uri"] == f"{a}/container-credentials"
        environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": token["full_uri"],
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": token["token"]}
        fetcher = ContainerMetadataFetcher(sleep=lambda _: None)
        creds = ContainerProvider(environ, fetcher=fetcher).load().get_frozen_credentials()
        sts = aws_client(dc_stack.aws, "sts", aws_access_key_id=creds.access_key,
                         aws_secret_access_key=creds.secret_key, aws_session_token=creds.token)
        assert sts.get_caller_identity()["Arn"].endswith("assumed-role/DemoDeveloper/bob@example.com")
        # Revoked on A (the portal), refused on B at once.
        csrf = browser.roles(client, a)["csrf_token"]
        revoked = client.post(f"{a}/sessions/revoke", data={"kind": "container", "id": token["token_id"],
                                                           "csrf_token": csrf})
        assert revoked.status_code == 303
    refused = httpx.get(f"{b}/container-credentials", headers={"Authorization": token["token"],
                                                                "Accept": "application/json"})
    assert refused.status_code == 401 and refused.json()["error"] == "container_token_invalid"
