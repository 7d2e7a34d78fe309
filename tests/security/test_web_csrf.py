"""CSRF on every POST: the session's token, in the form body, or nothing happens."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.security._web_support import JSON, Stack, assert_refused, logged_in, role, web_stack

__all__ = ["web_stack"]

SESSION_POSTS = ["/roles/credentials", "/roles/console", "/logout"]

# Each: how the attacker's request carries (or fails to carry) a token, given the victim's and another
# session's tokens. Returns httpx.Client.post keyword arguments.
Attack = Callable[[str, str, str], dict[str, Any]]
ATTACKS: dict[str, Attack] = {
    "missing": lambda role_arn, mine, other: {"data": {"role": role_arn}},
    "empty": lambda role_arn, mine, other: {"data": {"role": role_arn, "csrf_token": ""}},
    "wrong": lambda role_arn, mine, other: {"data": {"role": role_arn, "csrf_token": mine[:-2] + "xx"}},
    "another_sessions": lambda role_arn, mine, other: {"data": {"role": role_arn, "csrf_token": other}},
    "in_query_not_body": lambda role_arn, mine, other: {"data": {"role": role_arn},
                                                        "params": {"csrf_token": mine}},
    "json_body": lambda role_arn, mine, other: {
        "content": json.dumps({"role": role_arn, "csrf_token": mine}),
        "headers": {"Content-Type": "application/json"}},
    "text_plain": lambda role_arn, mine, other: {
        "content": f"role={role_arn}&csrf_token={mine}", "headers": {"Content-Type": "text/plain"}},
    "in_a_header": lambda role_arn, mine, other: {"data": {"role": role_arn},
                                                  "headers": {"X-CSRF-Token": mine}},
    "twice_first_wrong": lambda role_arn, mine, other: {
        "content": f"csrf_token=forged&csrf_token={mine}&role={role_arn}",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_session_post_refuses_a_bad_csrf_token(web_stack: Stack, attack: str) -> None:
    developer = role(web_stack.account, "DemoDeveloper")
    with logged_in(web_stack, "bob") as (victim, mine), logged_in(web_stack, "alice") as (_, other):
        for path in SESSION_POSTS:
            before = web_stack.issued()
            kwargs = ATTACKS[attack](developer, mine, other)
            kwargs["headers"] = {**JSON, **kwargs.get("headers", {}), "Origin": "https://evil.example"}
            response = victim.post(f"{web_stack.url}{path}", **kwargs)
            assert_refused(web_stack, response, 403, "csrf_failed")
            assert web_stack.issued() == before and "location" not in response.headers
        # The session survived every forged logout, and the genuine token still works.
        assert victim.get(f"{web_stack.url}/roles", headers=JSON).status_code == 200
        done = victim.post(f"{web_stack.url}/roles/credentials", data={"role": developer, "csrf_token": mine},
                           headers=JSON)
        assert done.status_code == 200 and done.json()["AccessKeyId"]


def test_session_posts_without_a_session_are_refused(web_stack: Stack) -> None:
    """A token alone (no cookie), or with a forged cookie, is nothing."""
    with logged_in(web_stack, "bob") as (_, mine), httpx.Client() as stranger:
        for cookie in (None, "forged", "a.b.c"):
            if cookie is not None:
                stranger.cookies.set("sts_broker_session", cookie)
            for path in SESSION_POSTS:
                response = stranger.post(f"{web_stack.url}{path}", headers=JSON, data={
                    "role": role(web_stack.account, "DemoDeveloper"), "csrf_token": mine})
                assert response.status_code == 401 and response.json()["error"] in (
                    "not_authenticated", "session_missing_or_invalid")


def test_the_other_posts_need_no_cookie_and_take_none(web_stack: Stack) -> None:
    """The POSTs without a session cookie have their own proof: the admin API a bearer token (a session
    cookie is no substitute), the token endpoint a subject token and an allowed Origin (CORS), the ACS an
    answer to an AuthnRequest this browser started."""
    with logged_in(web_stack, "alice") as (client, _):
        explain = client.post(f"{web_stack.url}/admin/rules/explain", headers=JSON,
                              content=json.dumps({"subject": "x", "idp": "dev"}))
        assert explain.status_code == 404  # the admin API is off in this stack: no token configured
        token = client.post(f"{web_stack.url}/oauth2/token", headers={"Origin": "https://evil.example"},
                            data={"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                                  "subject_token": web_stack.handmade.token(aud="web-app")})
        assert token.status_code == 400 and token.json()["error"] == "unauthorized_client"
        assert "access-control-allow-origin" not in token.headers
        acs = client.post(f"{web_stack.url}/saml/devsaml/acs", headers=JSON, data={"SAMLResponse": "PHg+"})
        assert acs.status_code in (400, 401) and acs.json()["error"] != "internal_error"


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=",
                                          "multipart/form-data; boundary=x"])
def test_a_malformed_multipart_form_is_the_brokers_refusal(web_stack: Stack, content_type: str) -> None:
    """A form the parser cannot read (Starlette raises its own HTTP error): the broker's JSON refusal,
    audited, never Starlette's plain text, never a 500; nothing issued."""
    with logged_in(web_stack, "bob") as (client, mine):
        before = web_stack.issued()
        part = b'--x\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n' + mine.encode()
        response = client.post(f"{web_stack.url}/roles/credentials", content=part,
                               headers={**JSON, "Content-Type": content_type})
        assert response.status_code in (400, 403), response.text[:200]
        assert response.headers["content-type"] == "application/json"
        assert_refused(web_stack, response, response.status_code, response.json()["error"])
        assert web_stack.issued() == before
