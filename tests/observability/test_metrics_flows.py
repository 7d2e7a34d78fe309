"""/metrics scraped over HTTP before and after real flows (OIDC sign-in, credentials, a role chain, the console,
refusals): every dependency's counters move by what the flow did."""

from __future__ import annotations

import httpx

from broker.devstack import browser
from broker.devstack.stack import DevStack
from tests.observability.conftest import ACCOUNT, role
from tests.support.own_stack import moved, scrape, value, variant

SPOKE_AUDIT = f"arn:aws:iam::{ACCOUNT[::-1]}:role/DemoAudit"


def _alice(client: httpx.Client, url: str) -> str:
    assert browser.login(client, url, "dev", "alice").status_code == 303
    csrf: str = browser.roles(client, url)["csrf_token"]
    return csrf


def test_a_sign_in_and_its_sts_calls_move_their_counters(obs: DevStack) -> None:
    url = obs.broker_url
    before = scrape(url)
    with browser.browser() as client:
        csrf = _alice(client, url)
        assert browser.post_role(client, url, "credentials", role("DemoDeveloper"), csrf).status_code == 200
        for _ in range(2):  # the hub session of the chain: an STS call, then the credential cache
            assert browser.post_role(client, url, "credentials", SPOKE_AUDIT, csrf).status_code == 200
        assert browser.post_role(client, url, "console", role("DemoAdmin"), csrf).status_code == 303
    after = scrape(url)
    # Web identity: DemoDeveloper, the chain's hub session once (then cached), DemoAdmin for the console.
    assert moved(before, after, "sts_broker_sts_calls_total", api="AssumeRoleWithWebIdentity", outcome="ok") >= 3
    assert moved(before, after, "sts_broker_sts_calls_total", api="AssumeRole", outcome="ok") == 2
    assert moved(before, after, "sts_broker_sts_call_seconds_count", api="AssumeRole") == 2
    assert value(after, "sts_broker_sts_call_seconds_bucket", api="AssumeRole", le="+Inf") >= 2
    assert moved(before, after, "sts_broker_credential_cache_lookups_total", result="miss") >= 1
    assert moved(before, after, "sts_broker_credential_cache_lookups_total", result="hit") >= 1
    assert moved(before, after, "sts_broker_logins_total", idp="dev", result="ok") == 1
    # Sessions and login state live in Redis: each operation timed.
    for operation in ("put", "get", "pop"):
        assert moved(before, after, "sts_broker_store_seconds_count", operation=operation) >= 1
    assert value(after, "sts_broker_idp_refreshes_total", idp="dev", kind="jwks", outcome="ok") >= 1
    assert value(after, "sts_broker_idp_refreshes_total", idp="dev", kind="oidc_discovery", outcome="ok") >= 1


def test_refusals_are_counted_by_idp_and_reason(obs: DevStack) -> None:
    url = obs.broker_url
    before = scrape(url)
    with browser.browser() as client:
        csrf = _alice(client, url)
        refused = browser.post_role(client, url, "credentials", role("Untrusted"), csrf)
        assert refused.status_code == 403 and refused.json()["error"] == "sts_access_denied"
        client.headers["Accept"] = "application/json"
        assert client.get(f"{url}/oidc/dev/callback?state=forged&code=x").status_code == 400
        for idp in ("nope-1", "nope-2"):  # ids nobody configured: one bounded label, not one per id
            assert client.get(f"{url}/login/{idp}").status_code == 404
    after = scrape(url)
    assert moved(before, after, "sts_broker_sts_calls_total", api="AssumeRoleWithWebIdentity",
                 outcome="sts_access_denied") == 1
    assert moved(before, after, "sts_broker_refusals_total", idp="", reason="sts_access_denied") == 1
    [login_refusal] = [labels for (name, labels), v in after.items() if name == "sts_broker_logins_total"
                       and ("idp", "dev") in labels and ("result", "ok") not in labels
                       and v > value(before, name, **dict(labels))]
    assert dict(login_refusal)["result"].startswith("state_")
    assert moved(before, after, "sts_broker_refusals_total", idp="other", reason="unknown_idp") == 2
    assert not any("nope-" in str(labels) for _, labels in after)


def test_the_request_histogram_and_exposition_are_standard(obs: DevStack) -> None:
    response = httpx.get(f"{obs.broker_url}/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE sts_broker_sts_calls_total counter" in response.text
    assert "# TYPE sts_broker_store_seconds histogram" in response.text


def test_the_boto3_transport_is_measured_too(obs: DevStack) -> None:
    exchange = obs.settings.token_exchange.model_copy(update={"sts_transport": "boto3"})
    with variant(obs, replica=True, token_exchange=exchange) as url, browser.browser() as client:
        before = scrape(url)
        csrf = _alice(client, obs.broker_url)  # signed in at the stack; the replica shares its Redis
        assert browser.post_role(client, url, "credentials", role("DemoDeveloper"), csrf).status_code == 200
        refused = browser.post_role(client, url, "credentials", role("Untrusted"), csrf)
        assert refused.status_code == 403
        after = scrape(url)
    assert moved(before, after, "sts_broker_sts_calls_total", api="AssumeRoleWithWebIdentity", outcome="ok") == 1
    assert moved(before, after, "sts_broker_sts_calls_total", api="AssumeRoleWithWebIdentity",
                 outcome="sts_access_denied") == 1
