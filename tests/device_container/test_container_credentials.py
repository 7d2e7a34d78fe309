"""Container credentials through botocore's own ContainerProvider (AWS_CONTAINER_CREDENTIALS_FULL_URI at the
loopback broker, AWS_CONTAINER_AUTHORIZATION_TOKEN), against the strict local AWS; refresh with 15-minute
credentials re-issued every 3 seconds (REFRESH_BEFORE); and every refusal built for real."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.credentials import ContainerProvider, RefreshableCredentials
from botocore.exceptions import CredentialRetrievalError
from botocore.utils import ContainerMetadataFetcher
from moto.sts.models import sts_backends

from broker.devstack import browser
from broker.devstack.device_login import approved_login
from broker.devstack.stack import DevStack, aws_client
from tests.device_container.conftest import ACCOUNT, REFRESH_BEFORE
from tests.device_container.device import device_login, signed_in, trust_another_url, variant
from tests.flows.conftest import audit_events

ADMIN = f"arn:aws:iam::{ACCOUNT}:role/DemoAdmin"
DEV = f"arn:aws:iam::{ACCOUNT}:role/DemoDeveloper"
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_ROLE_ARN",
           "AWS_WEB_IDENTITY_TOKEN_FILE")


def container_token(stack: DevStack, cli_token: str, role: str) -> httpx.Response:
    return httpx.post(f"{stack.broker_url}/cli/container-tokens", json={"role": role},
                      headers={"Authorization": f"Bearer {cli_token}"}, timeout=10)


def new_container(stack: DevStack, user: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the CLI login's token response, the container token response)."""
    login = device_login(stack, user)
    made = container_token(stack, login["access_token"], role)
    assert made.status_code == 200, made.text
    return login, made.json()


def fetch(stack: DevStack, **headers: str) -> httpx.Response:
    return httpx.get(f"{stack.broker_url}/container-credentials", headers={"Accept": "application/json", **headers},
                     timeout=10)


def provider(token: dict[str, Any]) -> ContainerProvider:
    """botocore's own provider and fetcher (only its retry pause shortened: a refusal is retried 3 times)."""
    environ = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": token["full_uri"],
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": token["token"]}
    return ContainerProvider(environ, fetcher=ContainerMetadataFetcher(sleep=lambda _: None))


def issued_for(stack: DevStack, container: str) -> list[dict[str, Any]]:
    return [e for e in audit_events(stack) if e["event"] == "container_credentials_issued"
            and e["container"] == container]


def all_issued(stack: DevStack) -> int:
    return sum(e["event"] in {"credentials_issued", "container_credentials_issued", "container_token_issued"}
               for e in audit_events(stack))


def assumed_roles() -> int:
    """STS calls the strict local AWS has answered for this stack's account."""
    return len(sts_backends[ACCOUNT]["aws"].assumed_roles)


def caller_arn(stack: DevStack, key: str, secret: str, token: str) -> str:
    sts = aws_client(stack.aws, "sts", aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)
    return str(sts.get_caller_identity()["Arn"])


@pytest.fixture
def container_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """An environment where only the container provider can find credentials."""
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield monkeypatch


def test_the_sdks_default_chain_gets_credentials_from_the_broker(dc_stack: DevStack,
                                                                  container_env: pytest.MonkeyPatch) -> None:
    login, token = new_container(dc_stack, "alice", "dc/DemoAdmin")  # by alias
    assert token["role_arn"] == ADMIN and token["full_uri"] == f"{dc_stack.broker_url}/container-credentials"
    container_env.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", token["full_uri"])
    container_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token["token"])
    session = boto3.session.Session(region_name="us-east-1")
    creds = session.get_credentials()
    assert creds is not None and creds.method == "container-role"
    sts = session.client("sts", endpoint_url=dc_stack.aws.endpoint_url)
    arn = sts.get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/DemoAdmin/alice@example.com"
    made = [e for e in audit_events(dc_stack) if e["event"] == "container_token_issued"
            and e["container"] == token["token_id"]]
    assert len(made) == 1 and made[0]["session_id"] == login["session_id"] and made[0]["role"] == ADMIN
    assert issued_for(dc_stack, token["token_id"])
    logged = dc_stack.audit_path.read_text()
    assert token["token"] not in logged and creds.get_frozen_credentials().secret_key not in logged


def test_credentials_are_refreshed_before_they_expire(dc_stack: DevStack) -> None:
    _, token = new_container(dc_stack, "alice", ADMIN)
    creds = provider(token).load()
    assert isinstance(creds, RefreshableCredentials)
    first = creds.get_frozen_credentials()
    # 15-minute credentials are inside botocore's refresh window, so it asks the broker again at each use:
    # the broker hands out the same keys until less than REFRESH_BEFORE of their life is left.
    assert creds.get_frozen_credentials().access_key == first.access_key
    answer = fetch(dc_stack, Authorization=token["token"]).json()
    assert answer["AccessKeyId"] == first.access_key and answer["AccountId"] == ACCOUNT
    left = (datetime.fromisoformat(answer["Expiration"]) - datetime.now(UTC)).total_seconds()
    assert answer["Expiration"].endswith("Z") and REFRESH_BEFORE - 5 < left <= 900
    threading.Event().wait(3.2)
    seen = len(issued_for(dc_stack, token["token_id"]))
    second = creds.get_frozen_credentials()
    assert second.access_key != first.access_key
    assert caller_arn(dc_stack, second.access_key, second.secret_key, second.token).endswith(
        "assumed-role/DemoAdmin/alice@example.com")
    assert [e["refreshed"] for e in issued_for(dc_stack, token["token_id"])[seen:]] == [True]


def test_concurrent_fetches_of_stale_credentials_make_one_sts_call(dc_stack: DevStack) -> None:
    _, token = new_container(dc_stack, "alice", ADMIN)
    assert fetch(dc_stack, Authorization=token["token"]).status_code == 200
    threading.Event().wait(3.2)  # now stale: the next fetches re-issue
    calls = assumed_roles()
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(fetch(dc_stack, Authorization=token["token"])))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(answers) == 8 and {a.status_code for a in answers} == {200}
    assert len({a.json()["AccessKeyId"] for a in answers}) == 1
    assert assumed_roles() == calls + 1


def test_a_revoked_token_gets_nothing(dc_stack: DevStack) -> None:
    _, token = new_container(dc_stack, "alice", ADMIN)
    with signed_in(dc_stack.broker_url, "alice") as client:
        listed = client.get(f"{dc_stack.broker_url}/sessions", headers={"Accept": "application/json"}).json()
        assert token["token_id"] in [t["token_id"] for t in listed["container_tokens"]]
        page = client.get(f"{dc_stack.broker_url}/sessions")
        assert token["token_id"] in page.text and "Container credential tokens" in page.text
        csrf = browser.roles(client, dc_stack.broker_url)["csrf_token"]
        done = client.post(f"{dc_stack.broker_url}/sessions/revoke",
                           data={"kind": "container", "id": token["token_id"], "csrf_token": csrf})
        assert done.status_code == 303
        listed = client.get(f"{dc_stack.broker_url}/sessions", headers={"Accept": "application/json"}).json()
        assert token["token_id"] not in [t["token_id"] for t in listed["container_tokens"]]
    before = all_issued(dc_stack)
    refused = fetch(dc_stack, Authorization=token["token"])
    assert refused.status_code == 401 and refused.json()["error"] == "container_token_invalid"
    with pytest.raises(CredentialRetrievalError):
        provider(token).load()
    assert all_issued(dc_stack) == before
    assert [e for e in audit_events(dc_stack) if e["event"] == "container_token_revoked"
            and e["container"] == token["token_id"] and e["by"] == "portal"]
    assert [e for e in audit_events(dc_stack) if e["event"] == "request_failed"
            and e.get("error_id") == refused.json()["error_id"]]


@pytest.mark.parametrize("ending", ["logout", "portal"])
def test_a_token_stops_when_its_cli_session_ends(dc_stack: DevStack, ending: str) -> None:
    login, token = new_container(dc_stack, "bob", "DemoDeveloper")  # by unique role name
    assert token["role_arn"] == DEV
    assert fetch(dc_stack, Authorization=token["token"]).status_code == 200
    if ending == "logout":  # `sts-broker logout`: RFC 7009 revocation of the CLI session's token
        ended = httpx.post(f"{dc_stack.broker_url}/oauth2/revoke", data={"token": login["access_token"],
                                                                         "client_id": "sts-broker-cli"})
        assert ended.status_code == 200
    else:
        with signed_in(dc_stack.broker_url, "bob") as client:
            csrf = browser.roles(client, dc_stack.broker_url)["csrf_token"]
            done = client.post(f"{dc_stack.broker_url}/sessions/revoke",
                               data={"kind": "cli", "id": login["session_id"], "csrf_token": csrf})
            assert done.status_code == 303
    before = all_issued(dc_stack)
    refused = fetch(dc_stack, Authorization=token["token"])
    assert refused.status_code == 401 and refused.json()["error"].startswith("container_")
    assert all_issued(dc_stack) == before
    revoked = [e for e in audit_events(dc_stack) if e["event"] == "container_token_revoked"
               and e["container"] == token["token_id"]]
    assert [e["by"] for e in revoked] == ["session_end"]
    # The ended session cannot make new ones either.
    assert container_token(dc_stack, login["access_token"], DEV).status_code == 401


def test_a_token_only_for_the_persons_own_roles(dc_stack: DevStack) -> None:
    login = device_login(dc_stack, "bob")
    before = all_issued(dc_stack)
    for role in (ADMIN, "dc/DemoAdmin", "DemoAdmin"):
        refused = container_token(dc_stack, login["access_token"], role)
        assert refused.status_code == 403 and refused.json()["error"] == "role_not_granted"
    assert all_issued(dc_stack) == before
    # Another person's token id cannot be revoked (or told apart from a made-up one).
    _, alices = new_container(dc_stack, "alice", ADMIN)
    with signed_in(dc_stack.broker_url, "bob") as client:
        csrf = browser.roles(client, dc_stack.broker_url)["csrf_token"]
        for public_id in (alices["token_id"], "made-up-id"):
            tried = client.post(f"{dc_stack.broker_url}/sessions/revoke",
                                data={"kind": "container", "id": public_id, "csrf_token": csrf})
            assert tried.status_code == 404
    assert fetch(dc_stack, Authorization=alices["token"]).status_code == 200
    failed = [e for e in audit_events(dc_stack) if e["event"] == "request_failed"
              and e.get("reason") == "container_token_unknown"]
    assert len(failed) >= 2


def _wrong_forms(token: str, cli_token: str) -> list[list[tuple[str, str]]]:
    return [
        [],  # none at all (the token in the query string, below)
        [("Authorization", "Basic " + base64.b64encode(f"x:{token}".encode()).decode())],
        [("Authorization", f"Token {token}")],
        [("Authorization", f"{token}x")],
        [("Authorization", f"Bearer {token} {token}")],
        [("Authorization", token), ("Authorization", token)],
        [("X-aws-ec2-metadata-token", token)],
        [("Authorization", cli_token)],  # the CLI session's own token is not a container token
    ]


def test_a_token_in_any_other_form_is_refused(dc_stack: DevStack) -> None:
    login, token = new_container(dc_stack, "alice", ADMIN)
    before = all_issued(dc_stack)
    for headers in _wrong_forms(token["token"], login["access_token"]):
        refused = httpx.get(f"{dc_stack.broker_url}/container-credentials", params={"token": token["token"]},
                            headers=[("Accept", "application/json"), *headers], timeout=10)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"].startswith("Bearer")
        reason = refused.json()["error"]
        assert reason in {"container_auth_missing", "container_auth_malformed", "container_token_invalid"}
        assert [e for e in audit_events(dc_stack) if e["event"] == "request_failed"
                and e.get("error_id") == refused.json()["error_id"] and e["reason"] == reason]
    # And the container token is no CLI session token.
    cli = httpx.get(f"{dc_stack.broker_url}/cli/session", headers={"Authorization": f"Bearer {token['token']}"})
    assert cli.status_code == 401
    assert all_issued(dc_stack) == before
    # The forms the SDKs and `curl -H "Authorization: Bearer ..."` use both work.
    assert fetch(dc_stack, Authorization=token["token"]).status_code == 200
    assert fetch(dc_stack, Authorization=f"Bearer {token['token']}").status_code == 200


def _reloaded(stack: DevStack, after: int, fetch_once: Callable[[], httpx.Response]) -> httpx.Response:
    """Fetches until the broker has reloaded the rules file (it checks every 2 s), at most 20 tries."""
    for _ in range(20):
        answer = fetch_once()
        if sum(e["event"] == "rules_reloaded" for e in audit_events(stack)) > after:
            return answer
        threading.Event().wait(0.3)
    raise AssertionError("the rules were not reloaded")


def test_a_token_stops_when_the_rules_no_longer_grant_its_role(dc_stack: DevStack) -> None:
    _, token = new_container(dc_stack, "bob", DEV)
    rules = dc_stack.workdir / "rules.yaml"
    original = rules.read_text()
    reloads = sum(e["event"] == "rules_reloaded" for e in audit_events(dc_stack))
    try:
        rules.write_text(original.replace("groups: {contains: developers}", "groups: {contains: nobody-at-all}"))
        refused = _reloaded(dc_stack, reloads, lambda: fetch(dc_stack, Authorization=token["token"]))
        assert refused.status_code == 403 and refused.json()["error"] == "role_not_granted"
        events = audit_events(dc_stack)
        since = max(i for i, e in enumerate(events) if e["event"] == "rules_reloaded")
        assert not [e for e in events[since:] if e["event"] in {"credentials_issued", "container_credentials_issued"}]
        assert [e for e in events[since:] if e.get("error_id") == refused.json()["error_id"]]
    finally:
        rules.write_text(original)
        _reloaded(dc_stack, reloads + 1, lambda: fetch(dc_stack, Authorization=token["token"]))
    assert fetch(dc_stack, Authorization=token["token"]).status_code == 200


def test_a_token_stops_when_its_cli_session_expires(dc_stack: DevStack) -> None:
    """A CLI session never outlives the browser session it came from; its container tokens neither."""
    short = dc_stack.settings.session.model_copy(update={"lifetime": timedelta(seconds=5)})
    with variant(dc_stack, session=short) as url:
        trust_another_url(dc_stack, url)
        with signed_in(url, "bob") as client:
            login = approved_login(url, client, "short-lived")
        assert login["expires_in"] <= 5
        made = httpx.post(f"{url}/cli/container-tokens", json={"role": DEV}, timeout=10,
                          headers={"Authorization": f"Bearer {login['access_token']}"})
        assert made.status_code == 200
        token = made.json()
        first = httpx.get(token["full_uri"], headers={"Authorization": token["token"]}, timeout=10)
        assert first.status_code == 200
        ends = datetime.fromisoformat(token["expires_at"]).timestamp()
        threading.Event().wait(max(0.0, ends - datetime.now(UTC).timestamp()) + 1.2)  # expires_at: whole seconds
        before = all_issued(dc_stack)
        late = httpx.get(token["full_uri"], headers={"Authorization": token["token"], "Accept": "application/json"},
                         timeout=10)
        assert late.status_code == 401 and late.json()["error"].startswith("container_")
        assert all_issued(dc_stack) == before
