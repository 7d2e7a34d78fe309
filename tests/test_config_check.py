"""`sts-broker check` on real broken trees: every problem of every file in one run, each `file:line: field:
message`, rules by id, a "did you mean" for mistyped keys, the fix for a missing key file, both files of a
duplicate IdP id, YAML syntax errors with the file's name, line and column."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from broker.cli import main
from broker.config_check import check_config
from broker.issuers.signing import generate_key_file

STRONG = secrets.token_urlsafe(48)

BROKER = """\
public_url: https://broker.example.com
session:
  secret: ${SESSION_SECRET}
keys:
  - kid: k1
    file: keys/k1.pem
    active: true
idp_configs: idp_configs
rules: rules.yaml
"""
OKTA = """\
id: okta
type: oidc
name: Okta
issuer: https://example.okta.com
client_id: 0oa1
client_secret: ${OKTA_SECRET}
scopes: [openid, email, groups]
"""
RULES = """\
version: 1
rules:
  - id: admins
    when:
      groups: {contains: admins}
    grant:
      - role: arn:aws:iam::111122223333:role/Admin
  - id: developers
    grant:
      - role: arn:aws:iam::111122223333:role/Dev
"""


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_SECRET", STRONG)
    monkeypatch.setenv("OKTA_SECRET", "okta-client-secret-value")


def tree(tmp: Path, broker: str = BROKER, rules: str = RULES, idps: dict[str, str] | None = None,
         key: bool = True) -> Path:
    if key:
        generate_key_file(tmp / "keys" / "k1.pem", bits=2048)
    (tmp / "idp_configs").mkdir()
    for name, text in (idps if idps is not None else {"okta.yaml": OKTA}).items():
        (tmp / "idp_configs" / name).write_text(text)
    (tmp / "rules.yaml").write_text(rules)
    (tmp / "broker.yaml").write_text(broker)
    return tmp / "broker.yaml"


def run_check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["check", "--config", str(config)])
    captured = capsys.readouterr()
    return code, [line.strip() for line in captured.err.splitlines()[1:]] if code else [captured.out.strip()]


def test_a_good_tree_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tree(tmp_path)
    assert run_check(config, capsys) == (0, [f"{config}: OK"])


def test_every_file_in_one_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """broker.yaml, the key file, two IdP files and the rules file are all broken: one run lists them all."""
    broker = BROKER.replace("public_url: https://", "public_url: http://").replace("rules: rules.yaml",
                                                                                    "rules: rules.yaml\nacess_log: all")
    config = tree(tmp_path, broker=broker, key=False,
                  rules=RULES.replace("role/Dev", "role/Dev\n        duration: 99h"),
                  idps={"okta.yaml": OKTA.replace("client_id:", "clientid:"), "bad.yaml": "id: [unclosed\n"})
    code, problems = run_check(config, capsys)
    key = tmp_path / "keys" / "k1.pem"
    idps, rules = tmp_path / "idp_configs", tmp_path / "rules.yaml"
    assert code == 1
    assert problems == [
        f"{config}:1: public_url: must use https (plain http is allowed only for loopback addresses)",
        f"{config}:10: acess_log: Extra inputs are not permitted; did you mean 'access_log'?",
        f"{config}:6: keys[k1].file: no such file: {key}; create it with `sts-broker keys generate --out {key}`",
        f"{idps / 'bad.yaml'}:2:1: not valid YAML: did not find expected ',' or ']' (while parsing a flow "
        "sequence, line 1)",
        f"{idps / 'okta.yaml'}:1: client_id: Field required",
        f"{idps / 'okta.yaml'}:5: clientid: Extra inputs are not permitted; did you mean 'client_id'?",
        f"{rules}:11: rules[developers].grant.0.duration: duration must be between 15m and 12h (36h for via "
        "federation_token)",
    ], problems
    text = "\n".join(problems)
    assert "<unicode string>" not in text and len(problems) >= 6


def test_missing_key_file_names_the_line_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tree(tmp_path, key=False)
    key = tmp_path / "keys" / "k1.pem"
    code, problems = run_check(config, capsys)
    assert (code, problems) == (1, [f"{config}:6: keys[k1].file: no such file: {key}; create it with "
                                    f"`sts-broker keys generate --out {key}`"])
    assert main(["keys", "generate", "--out", str(key), "--bits", "2048"]) == 0  # the fix, as printed, works
    assert run_check(config, capsys)[0] == 0


def test_a_key_file_that_is_no_key_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tree(tmp_path)
    (tmp_path / "keys" / "k1.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    code, problems = run_check(config, capsys)
    assert code == 1 and problems and all(p.startswith(f"{config}:6: keys[k1].file: ") for p in problems)


def test_duplicate_idp_id_names_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tree(tmp_path, idps={"a-okta.yaml": OKTA, "b-okta.yaml": "# the same IdP again\n" + OKTA})
    first, second = tmp_path / "idp_configs" / "a-okta.yaml", tmp_path / "idp_configs" / "b-okta.yaml"
    assert run_check(config, capsys) == (1, [f"{second}:2: id: duplicate IdP id 'okta': {first}:1 has it too"])


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tree(tmp_path, rules="version: 1\nrules:\n  - id: a\n    when: {groups: [x}\n")
    code, problems = run_check(config, capsys)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'rules.yaml'}:4:22: not valid YAML: ")
    assert "unicode string" not in problems[0]


def test_rules_are_named_by_id_with_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = RULES.replace("    when:\n", "    whne:\n").replace("role/Dev", "role/Dev\n        sesion_name: x")
    code, problems = run_check(tree(tmp_path, rules=rules), capsys)
    file = tmp_path / "rules.yaml"
    assert code == 1
    assert f"{file}:4: rules[admins].whne: Extra inputs are not permitted; did you mean 'when'?" in problems
    assert (f"{file}:11: rules[developers].grant.0.sesion_name: Extra inputs are not permitted; did you mean "
            "'session_name'?") in problems


def test_a_nested_typo_gets_the_nested_models_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker = BROKER.replace("  secret: ${SESSION_SECRET}\n", "  secret: ${SESSION_SECRET}\n  lifetme: 8h\n")
    config = tree(tmp_path, broker=broker)
    assert run_check(config, capsys) == (1, [
        f"{config}:4: session.lifetme: Extra inputs are not permitted; did you mean 'lifetime'?"])


def test_broken_broker_yaml_still_checks_the_other_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broker = BROKER.replace("public_url: https://broker.example.com", "public_url: ftp://x")
    config = tree(tmp_path, broker=broker, rules="version: 2\nrules: []\n")
    code, problems = run_check(config, capsys)
    assert code == 1 and problems[0].startswith(f"{config}:1: public_url: ")
    assert f"{tmp_path / 'rules.yaml'}:1: version: Input should be 1" in problems


def test_unset_variable_is_one_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_SECRET")
    config = tree(tmp_path)
    assert run_check(config, capsys) == (1, [
        f"{config}:3: session.secret: environment variable SESSION_SECRET is not set"])


def test_missing_directory_and_rules_are_located_in_broker_yaml(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    broker = BROKER.replace("idp_configs: idp_configs", "idp_configs: nowhere").replace("rules.yaml", "nope.yaml")
    config = tree(tmp_path, broker=broker)
    assert run_check(config, capsys) == (1, [
        f"{config}:8: idp_configs: not a directory: {tmp_path / 'nowhere'}",
        f"{config}:9: rules: no such file: {tmp_path / 'nope.yaml'}",
    ])


def test_check_config_is_empty_for_the_good_tree(tmp_path: Path) -> None:
    assert check_config(tree(tmp_path)) == []


def test_unset_variable_silences_its_sections_complaint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """store.url from an unset variable: the store section's own check (an empty URL scheme) is not listed."""
    broker = BROKER.replace("keys:\n", "store:\n  url: ${STORE_URL_UNSET}\nkeys:\n")
    config = tree(tmp_path, broker=broker)
    assert run_check(config, capsys) == (1, [
        f"{config}:5: store.url: environment variable STORE_URL_UNSET is not set"])


def test_bad_saml_metadata_is_located_at_its_idp_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(__file__).resolve().parent.parent / "idp_configs"
    saml = (repo / "generic-saml.yaml").read_text()
    config = tree(tmp_path, idps={"okta.yaml": OKTA, "generic-saml.yaml": saml})
    (tmp_path / "idp_configs" / "metadata").mkdir()
    (tmp_path / "idp_configs" / "metadata" / "generic-idp.xml").write_text("<EntityDescriptor>not closed")
    line = next(n for n, text in enumerate(saml.splitlines(), 1) if text.startswith("metadata_file:"))
    code, problems = run_check(config, capsys)
    assert code == 1 and len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'idp_configs' / 'generic-saml.yaml'}:{line}: metadata_file: "
                                  f"{tmp_path / 'idp_configs' / 'metadata' / 'generic-idp.xml'}: ")


def test_serve_lists_every_problem_when_it_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A replica that cannot start says everything that is wrong at once, not the first file's problems."""
    config = tree(tmp_path, key=False, rules="version: 2\nrules: []\n")
    assert main(["serve", "--config", str(config), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:6: keys[k1].file: no such file" in err
    assert f"{tmp_path / 'rules.yaml'}:1: version: Input should be 1" in err
