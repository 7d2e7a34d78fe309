"""The admin explanation API: the full explanation for admins, refused without the admin token."""

from __future__ import annotations

import httpx

from broker.devstack.stack import DevStack
from tests.flows.conftest import ADMIN_TOKEN
from tests.flows.test_faults import variant
from tests.flows.test_refusals import JSON, assert_refused

CAROL = {"idp": "dev", "subject": "carol", "email": "carol@example.com", "email_verified": True,
         "groups": ["contractors", "developers"]}


def test_admin_explains_with_values(stack: DevStack) -> None:
    with httpx.Client(base_url=stack.broker_url) as http:
        response = http.post("/admin/rules/explain", json=CAROL, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    rules = {r["id"]: r for r in body["rules"]}
    assert rules["no-contractors"]["removed"] == ["arn:aws:iam::123456789012:role/DemoDeveloper"]
    failure = rules["platform-admins"]["failure"]
    assert failure["path"] == "when.groups.contains" and failure["actual"] == ["contractors", "developers"]
    assert body["grants"] == []


def test_admin_token_required(stack: DevStack) -> None:
    with httpx.Client(base_url=stack.broker_url, headers=JSON) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
            assert_refused(stack, http.post("/admin/rules/explain", json=CAROL, headers=headers),
                           401, "admin_token_invalid")
        bad_body = http.post("/admin/rules/explain", content=b"{not json",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert_refused(stack, bad_body, 400, "identity_invalid")


def test_admin_api_off_without_token(stack: DevStack) -> None:
    with variant(stack, admin=stack.settings.admin.model_copy(update={"token": None})) as url, \
            httpx.Client(headers=JSON) as http:
        assert_refused(stack, http.post(f"{url}/admin/rules/explain", json=CAROL), 404, "admin_disabled")
