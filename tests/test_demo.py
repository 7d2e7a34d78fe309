"""`sts-broker demo --self-test` as a user runs it: a separate process, the whole login, exit status 0."""

from __future__ import annotations

import subprocess
import sys


def test_demo_self_test_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "broker", "demo", "--self-test"], capture_output=True,
                            text=True, timeout=120, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-2000:] + result.stderr[-2000:]
    assert "SELF-TEST PASSED" in out
    assert 'alice: granted ["arn:aws:iam::123456789012:role/DemoAdmin"' in out
    assert "carol: granted []" in out
    assert "GetCallerIdentity with them: arn:aws:sts::123456789012:assumed-role/" in out
    assert "federation endpoint accepted the sign-in token" in out
    # alice's role chain: DemoDeveloper's session (from the cache), then AssumeRole into the spoke account.
    assert '"arn:aws:iam::210987654321:role/DemoAudit", "arn:aws:iam::310000000001:role/Admin"' in out
    # The demo's fleet: 40 roles in 12 accounts for alice, one of them issued with the broker's own credentials.
    assert "ReadOnly: one of 40 roles, in account 310000000010" in out
    assert "GetCallerIdentity with them: arn:aws:sts::310000000010:assumed-role/ReadOnly/alice@example.com" in out
    assert "GetCallerIdentity with them: arn:aws:sts::210987654321:assumed-role/DemoAudit/alice@example.com" in out
    # `sts-broker login --device` approved in the same browser, then container credentials for the role.
    assert ("device login + container credentials: arn:aws:sts::123456789012:assumed-role/DemoAdmin/"
            "alice@example.com") in out
    # The SAML login path: pysaml2 behind a login form, HTTP-Redirect AuthnRequest, HTTP-POST ACS.
    assert 'alice (SAML): granted ["arn:aws:iam::123456789012:role/DemoAdmin"' in out
    assert 'bob (SAML): granted ["arn:aws:iam::123456789012:role/DemoDeveloper"]' in out
    assert "carol (SAML): granted []" in out
    # The same IdP through the HTTP-POST binding (the broker's auto-posting page, then pysaml2 parses the
    # AuthnRequest with its BINDING_HTTP_POST), with the same roles.
    assert 'alice (SAML devsamlpost, HTTP-POST): granted ["arn:aws:iam::123456789012:role/DemoAdmin"' in out
    assert 'bob (SAML devsamlpost, HTTP-POST): granted ["arn:aws:iam::123456789012:role/DemoDeveloper"]' in out
    assert "carol (SAML devsamlpost, HTTP-POST): granted []" in out


def test_demo_with_a_post_only_saml_idp() -> None:
    """`--saml-binding post`: the demo's SAML IdP publishes only HTTP-POST; the broker reads that from its
    metadata and both SAML entries sign in by HTTP-POST."""
    result = subprocess.run([sys.executable, "-m", "broker", "demo", "--self-test", "--saml-binding", "post"],
                            capture_output=True, text=True, timeout=120, check=False)
    out = result.stdout
    assert result.returncode == 0, out[-2000:] + result.stderr[-2000:]
    assert "SELF-TEST PASSED" in out and "(SAML)" not in out
    assert 'alice (SAML, HTTP-POST): granted ["arn:aws:iam::123456789012:role/DemoAdmin"' in out
    assert 'bob (SAML devsamlpost, HTTP-POST): granted ["arn:aws:iam::123456789012:role/DemoDeveloper"]' in out
    assert "carol (SAML, HTTP-POST): granted []" in out


def test_self_test_fails_loudly() -> None:
    from pathlib import Path

    from broker.devstack.local_aws import LocalAws
    from broker.devstack.selftest import self_test
    from broker.devstack.servers import free_port
    from broker.devstack.stack import DevStack

    dead = f"http://127.0.0.1:{free_port()}"
    stack = DevStack(dead, dead, LocalAws(dead, dead, "123456789012"), Path("."), None, Path("."))  # type: ignore[arg-type]
    assert self_test(stack) == 1
