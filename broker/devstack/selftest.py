"""`sts-broker demo --self-test`: the whole login, unattended, against the running embedded stack."""

from __future__ import annotations

import json
from html import unescape

import httpx

from broker.devstack import browser
from broker.devstack.dev_saml_idp import browser_login as saml_browser_login
from broker.devstack.device_login import container_step
from broker.devstack.iam_paths import spoke_account
from broker.devstack.stack import SAML_IDP_ID, SAML_POST_IDP_ID, SPOKE_ROLE, DevStack, aws_client

FLEET_ROLE = "arn:aws:iam::310000000010:role/ReadOnly"  # web-dev, in demo_rules.yaml's fleet


def _redact(value: str) -> str:
    return f"{value[:4]}…({len(value)} chars)"


def _say(line: str) -> None:
    print(line, flush=True)


def _credentials_and_identity(stack: DevStack, client: httpx.Client, role: str, csrf: str) -> None:
    response = browser.post_role(client, stack.broker_url, "credentials", role, csrf, format="credential_process")
    if response.status_code != 200 or response.headers.get("cache-control") != "no-store":
        raise AssertionError(f"credentials answered {response.status_code}: {response.text[:300]}")
    creds = response.json()
    if creds.get("Version") != 1 or not str(creds.get("Expiration", "")).endswith("Z"):
        raise AssertionError("credential_process output lacks Version 1 or a timezone-aware Expiration")
    _say(f"  credentials: AccessKeyId={creds['AccessKeyId']} SecretAccessKey={_redact(creds['SecretAccessKey'])} "
         f"SessionToken={_redact(creds['SessionToken'])} Expiration={creds['Expiration']}")
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    caller = sts.get_caller_identity()
    _say(f"  GetCallerIdentity with them: {caller['Arn']}")
    if ":assumed-role/" not in caller["Arn"] or caller["Account"] != role.split(":")[4]:
        raise AssertionError("the credentials do not belong to an assumed role of the role's account")


def _console(stack: DevStack, client: httpx.Client, role: str, csrf: str) -> None:
    response = browser.post_role(client, stack.broker_url, "console", role, csrf)
    if response.status_code != 303:
        raise AssertionError(f"console answered {response.status_code}: {response.text[:300]}")
    url = response.headers["location"]
    _say(f"  console URL: {url.split('SigninToken=')[0]}SigninToken=…")
    page = client.get(url)
    if page.status_code != 200 or role.rsplit("/", 1)[-1] not in unescape(page.text):
        raise AssertionError(f"the federation login page did not sign in to {role}")
    _say("  federation endpoint accepted the sign-in token")


def _device_and_container(stack: DevStack, client: httpx.Client, role: str) -> None:
    """`sts-broker login --device` approved in this browser, then container credentials for the role."""
    creds = container_step(stack.broker_url, client, role)
    sts = aws_client(stack.aws, "sts", aws_access_key_id=creds["AccessKeyId"],
                     aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["Token"])
    _say(f"  device login + container credentials: {sts.get_caller_identity()['Arn']}")


def _binding_used(stack: DevStack, idp: str) -> str:
    """How the last AuthnRequest to `idp` travelled, as the broker's audit log says."""
    started = [e for e in map(json.loads, stack.audit_path.read_text().splitlines())
               if e.get("event") == "login_started" and e.get("idp") == idp]
    return str(started[-1].get("binding")) if started else "none"


def check_user(stack: DevStack, user: str, *, saml: str | None = None, chained: str | None = None,
               fleet: str | None = None) -> list[str]:
    """One login of `user`: at the OIDC dev IdP, or at the SAML IdP `saml` (its binding checked and said);
    `chained`: a role reached through a role chain, whose credentials and console are tried too; `fleet`: a
    role in one of the demo's many accounts (AssumeRole with the broker's own credentials), tried too."""
    with browser.browser() as client:
        if saml:
            landed = saml_browser_login(client, stack.broker_url, saml, user)
        else:
            landed = browser.login(client, stack.broker_url, "dev", user)
        if landed.status_code != 303 or landed.headers.get("location") != "/roles":
            raise AssertionError(f"login of {user} ended with {landed.status_code}: {landed.text[:300]}")
        label = ""
        if saml:
            binding = _binding_used(stack, saml)
            wanted = "post" if saml == SAML_POST_IDP_ID else stack.saml_binding
            if binding != wanted:
                raise AssertionError(f"the AuthnRequest to {saml} went by {binding}, expected {wanted}")
            named = "" if saml == SAML_IDP_ID else f" {saml}"
            label = f" (SAML{named})" if binding == "redirect" else f" (SAML{named}, HTTP-POST)"
        view = browser.roles(client, stack.broker_url)
        granted = [r["role_arn"] for r in view["roles"]]
        _say(f"{user}{label}: granted {json.dumps(granted)}")
        if granted:
            _credentials_and_identity(stack, client, granted[0], view["csrf_token"])
            _console(stack, client, granted[0], view["csrf_token"])
            if not saml:
                _device_and_container(stack, client, granted[0])
        if chained is not None:
            _say(f"  {chained.rsplit('/', 1)[-1]}: a role chain from the hub role into account {chained.split(':')[4]}")
            _credentials_and_identity(stack, client, chained, view["csrf_token"])
            _console(stack, client, chained, view["csrf_token"])
        if fleet is not None:
            _say(f"  {fleet.rsplit('/', 1)[-1]}: one of {len(granted)} roles, in account {fleet.split(':')[4]}")
            _credentials_and_identity(stack, client, fleet, view["csrf_token"])
        return granted


def self_test(stack: DevStack) -> int:
    expected = {"alice": 40, "bob": 1, "carol": 0}
    spoke = f"arn:aws:iam::{spoke_account(stack.aws.account_id)}:role/{SPOKE_ROLE}"
    try:
        for user, count in expected.items():
            granted = check_user(stack, user, chained=spoke if user == "alice" else None,
                                 fleet=FLEET_ROLE if user == "alice" else None)
            if len(granted) != count:
                raise AssertionError(f"{user} was granted {len(granted)} roles, expected {count}")
        # The same people through the SAML IdP (pysaml2; HTTP-POST ACS), its AuthnRequest by each binding:
        # SAML_IDP_ID by HTTP-Redirect (or HTTP-POST with --saml-binding post), SAML_POST_IDP_ID by HTTP-POST.
        for idp in (SAML_IDP_ID, SAML_POST_IDP_ID):
            for user, count in expected.items():
                granted = check_user(stack, user, saml=idp)
                if len(granted) != count:
                    raise AssertionError(f"{user} (SAML {idp}) was granted {len(granted)} roles, expected {count}")
    except Exception as exc:  # every failure, whatever its kind, must fail the self-test loudly
        _say(f"SELF-TEST FAILED: {type(exc).__name__}: {exc}")
        return 1
    _say("SELF-TEST PASSED")
    return 0
