"""Every example rules file loads, passes `rules check`, and its own test cases pass under `rules test`."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "rules").glob("*.yaml"))
IDP_CONFIGS = Path(__file__).resolve().parents[2] / "idp_configs"


def test_there_are_examples() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"okta-multi-account", "entra-group-ids", "google-workspace", "adfs-passthrough",
            "abac-session-tags"} <= names


@pytest.mark.parametrize("file", EXAMPLES, ids=lambda p: p.stem)
def test_example(file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(file), "--idp-configs", str(IDP_CONFIGS)]) == 0
    assert main(["rules", "test", str(file)]) == 0
    out = capsys.readouterr().out
    assert " 0 failed" in out and "FAIL" not in out


def test_failing_case_prints_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nrules:\n  - id: r\n    grant: [{role: 'arn:aws:iam::111122223333:role/R'}]\n")
    (tmp_path / "r.tests.yaml").write_text(
        "- name: wrong\n  identity: {subject: someone}\n  expect: [{role: 'arn:aws:iam::111122223333:role/X'}]\n")
    assert main(["rules", "test", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong" in out and "--- expected" in out
    assert "-- role: arn:aws:iam::111122223333:role/X" in out and "+- role: arn:aws:iam::111122223333:role/R" in out


def test_explain_prints_each_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    who = tmp_path / "eve.json"
    who.write_text('{"idp": "okta", "subject": "00u9", "email": "eve@example.com", '
                   '"groups": ["aws-offboarding", "aws-engineers"]}')
    assert main(["rules", "explain", str(EXAMPLES[-1].with_name("okta-multi-account.yaml")),
                 "--identity", str(who)]) == 0
    out = capsys.readouterr().out
    assert "prod-admins (allow): needs MFA" in out
    assert "offboarding (deny): matched; removes arn:aws:iam::111122223333:role/ReadOnly" in out


def test_readme_rules_example_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## The rules language"):]
    block = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml"))]
    (tmp_path / "rules.yaml").write_text(block)
    assert main(["rules", "test", str(tmp_path / "rules.yaml")]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out


def test_check_warns_of_a_saml_pass_through_its_idp_cannot_serve(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`token: passthrough` via saml for okta-saml (no aws_passthrough: its ACS takes only responses addressed to
    the broker) is flagged; for okta-aws (aws_passthrough: true) it is not."""
    grant = ("{role: 'arn:aws:iam::111122223333:role/Dev', via: saml, token: passthrough, "
             "provider: 'arn:aws:iam::111122223333:saml-provider/okta-aws'}")
    rules = tmp_path / "rules.yaml"
    for idp, warned in (("okta-saml", True), ("okta-aws", False)):
        rules.write_text(f"version: 1\nrules:\n  - id: r\n    idps: [{idp}]\n    grant: [{grant}]\n")
        assert main(["rules", "check", str(rules), "--idp-configs", str(IDP_CONFIGS)]) == 0
        out = capsys.readouterr().out
        assert (f"rules.yaml:5: rules[r].grant.0.token: warning: token: passthrough via saml for {idp}, whose "
                "config has no aws_passthrough" in out) is warned, out
