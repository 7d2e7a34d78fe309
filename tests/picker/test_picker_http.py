"""The role picker over real HTTP: the demo stack (dev OIDC and SAML IdPs, strict local AWS, Redis store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
from moto.sts.models import sts_backends

from broker.devstack import browser
from broker.devstack.stack import DevStack
from tests.picker.conftest import (
    ACCOUNT,
    ADMIN,
    DEVELOPER,
    PAYMENTS_ADMIN,
    WEB_DEV_READONLY,
    audit_events,
    signed_in,
)

HTML = {"Accept": "text/html"}
ROW = r'<form class="picker-use"[^>]*>\s*<input[^>]*><input type="hidden" name="role" value="([^"]+)"'


def _view(client: httpx.Client, stack: DevStack, q: str = "") -> dict[str, Any]:
    response = client.get(f"{stack.broker_url}/roles", params={"q": q} if q else None,
                          headers={"Accept": "application/json"})
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def _page(client: httpx.Client, stack: DevStack, **params: str) -> str:
    response = client.get(f"{stack.broker_url}/roles", params=params, headers=HTML)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    return unescape(response.text)


def _shown(page: str) -> list[str]:
    """The role ARNs of the page's rows, in order (each row's Open console form), each once (a favourite or
    recent role is also listed under its account)."""
    rows = re.findall(ROW, page)
    return list(dict.fromkeys(rows))


def _star(client: httpx.Client, stack: DevStack, role: str, on: str = "1", **extra: str) -> httpx.Response:
    csrf = _view(client, stack)["csrf_token"]
    return client.post(f"{stack.broker_url}/roles/favourite",
                       data={"role": role, "on": on, "csrf_token": csrf, **extra})


def test_roles_are_grouped_by_account_with_names_and_ids(stack: DevStack) -> None:
    with signed_in(stack, "alice") as client:
        view = _view(client, stack)
        accounts = [g for g in view["groups"] if g["kind"] == "account"]
        assert len(view["roles"]) == 40 and len(accounts) == 12
        assert [g["title"] for g in accounts][:3] == ["data-lake", "demo", "demo-spoke"]  # by name
        payments = next(g for g in accounts if g["title"] == "payments-prod")
        assert payments["account_id"] == "310000000001" and len(payments["roles"]) == 5
        page = _page(client, stack)
        assert '">data-lake <span class="acct-id">310000000003</span></h2>' in page
        assert "payments-prod/IncidentResponder" in page  # the alias beside the role name
        assert len(_shown(page)) == 40 and "40 roles." in page


def test_the_filter_matches_account_name_id_role_and_alias_without_javascript(stack: DevStack) -> None:
    with signed_in(stack, "alice") as client:
        page = _page(client, stack, q="payments admin")
        assert sorted(_shown(page)) == [PAYMENTS_ADMIN, "arn:aws:iam::310000000002:role/Admin"]
        assert "2 of 40 roles match." in page and 'value="payments admin"' in page
        assert {r.split(":")[4] for r in _shown(_page(client, stack, q="310000000008"))} == {"310000000008"}
        assert _shown(_page(client, stack, q="DATA-LAKE/analyst")) == ["arn:aws:iam::310000000003:role/Analyst"]
        assert _shown(_page(client, stack, q="incident")) == ["arn:aws:iam::310000000001:role/IncidentResponder"]
        nothing = _page(client, stack, q="no-such-thing")
        assert _shown(nothing) == [] and "No role matches “no-such-thing”" in nothing


def test_a_favourite_comes_first_after_signing_in_again_through_oidc_and_saml(stack: DevStack) -> None:
    for idp in ("dev", "devsaml"):
        with signed_in(stack, "alice", idp) as client:
            starred = _star(client, stack, WEB_DEV_READONLY, q="web")
            assert starred.status_code == 303 and starred.headers["location"] == "/roles?q=web"
        with signed_in(stack, "alice", idp) as again:
            view = _view(again, stack)
            assert view["favourites"] == [WEB_DEV_READONLY]
            assert view["groups"][0] == {"kind": "favourites", "title": "Favourites", "account_id": "",
                                         "roles": [WEB_DEV_READONLY]}
            page = _page(again, stack)
            assert _shown(page)[0] == WEB_DEV_READONLY and 'aria-pressed="true"' in page
            assert _star(again, stack, WEB_DEV_READONLY, on="0").status_code == 303
            assert _view(again, stack)["favourites"] == []
    event = audit_events(stack, "favourite_set")[-1]
    assert (event["role"], event["on"], event["idp"]) == (WEB_DEV_READONLY, False, "devsaml")


def test_a_forged_favourite_for_a_role_not_granted_is_refused_and_not_stored(stack: DevStack) -> None:
    with signed_in(stack, "bob") as client:
        refused = _star(client, stack, ADMIN)  # alice's role, not bob's
        assert refused.status_code == 403
        assert "You can only star roles you are granted. Nothing was saved." in unescape(refused.text)
        event = audit_events(stack, "request_failed")[-1]
        assert (event["reason"], event["status"], event["path"]) == ("favourite_not_granted", 403, "/roles/favourite")
        assert _view(client, stack)["favourites"] == []
        no_csrf = client.post(f"{stack.broker_url}/roles/favourite", data={"role": DEVELOPER, "on": "1"})
        assert no_csrf.status_code == 403 and audit_events(stack, "request_failed")[-1]["reason"] == "csrf_failed"
        assert _view(client, stack)["favourites"] == []


def test_recently_used_roles_appear_after_use(stack: DevStack) -> None:
    with signed_in(stack, "alice", "devsamlpost") as client:
        csrf = _view(client, stack)["csrf_token"]
        assert browser.post_role(client, stack.broker_url, "credentials", PAYMENTS_ADMIN, csrf).status_code == 200
        assert browser.post_role(client, stack.broker_url, "console", DEVELOPER, csrf).status_code == 303
        view = _view(client, stack)
        assert view["recent"] == [DEVELOPER, PAYMENTS_ADMIN]
        assert view["groups"][0] == {"kind": "recent", "title": "Recently used", "account_id": "",
                                     "roles": [DEVELOPER, PAYMENTS_ADMIN]}
        assert "Recently used" in _page(client, stack)


def test_one_role_opens_its_console_and_the_list_stays_reachable(stack: DevStack) -> None:
    with signed_in(stack, "bob") as client:
        page = _page(client, stack)
        assert "Opening the AWS console" in page and "data-auto-open" in page
        assert f'name="role" value="{DEVELOPER}"' in page and 'href="/roles?list=1"' in page
        listed = _page(client, stack, list="1")
        assert _shown(listed) == [DEVELOPER]
        assert [r["role_arn"] for r in _view(client, stack)["roles"]] == [DEVELOPER]  # JSON: always the list


def _issued(stack: DevStack) -> tuple[int, int, int]:
    """Credentials and consoles the broker says it issued, and the role sessions AWS (moto) says it made."""
    return (len(audit_events(stack, "credentials_issued")), len(audit_events(stack, "console_issued")),
            len(sts_backends[ACCOUNT]["aws"].assumed_roles))


def test_a_session_length_within_the_grant_is_used(stack: DevStack) -> None:
    with signed_in(stack, "alice") as client:
        page = _page(client, stack, q="demo/DemoAdmin")
        assert re.search(r'<option value="900">15 min</option><option value="1800">30 min</option>'
                         r'<option value="3600" selected>1 h</option>', page)
        csrf = _view(client, stack)["csrf_token"]
        before = _issued(stack)
        answer = browser.post_role(client, stack.broker_url, "credentials", ADMIN, csrf, duration="1800",
                                   format="credential_process")
        assert answer.status_code == 200
        assert _issued(stack) == (before[0] + 1, before[1], before[2] + 1)  # what the refusals below never see
        left = datetime.fromisoformat(answer.json()["Expiration"].replace("Z", "+00:00")) - datetime.now(UTC)
        assert 1700 < left.total_seconds() <= 1800


def test_a_session_length_outside_the_grant_is_refused_and_nothing_issued(stack: DevStack) -> None:
    with signed_in(stack, "alice") as client:
        csrf = _view(client, stack)["csrf_token"]
        wide_1800 = "\uff11\uff18\uff10\uff10"  # full-width digits: str.isdigit says yes
        for action, forged in (("credentials", "7200"), ("credentials", "600"), ("console", "43200"),
                               ("credentials", wide_1800), ("console", "-900"), ("credentials", "3600.0")):
            before = _issued(stack)
            answer = client.post(f"{stack.broker_url}/roles/{action}",
                                 data={"role": ADMIN, "csrf_token": csrf, "duration": forged})
            assert answer.status_code == 400, (action, forged)
            assert "Choose a session length from 15 min to 1 h for this role. Nothing was issued." in unescape(
                answer.text)
            event = audit_events(stack, "request_failed")[-1]
            assert (event["reason"], event["status"]) == ("duration_outside_grant", 400)
            assert _issued(stack) == before


def test_no_role_says_why_in_words_without_rule_internals(stack: DevStack) -> None:
    with signed_in(stack, "carol") as client:
        view = _view(client, stack)
        assert view["roles"] == [] and [w["code"] for w in view["why_none"]] == ["denied", "condition_failed"]
        page = _page(client, stack)
        assert "You have no AWS roles here yet" in page
        assert "access policy does not allow your account to use AWS roles here" in page
        for internal in ("no-contractors", "contractors", "platform-admins", "developers", "fleet", ACCOUNT):
            assert internal not in page  # the rules' words never reach the person
        assert "picker-q" not in page  # no filter box for nothing
