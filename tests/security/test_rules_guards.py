"""Finding 6 (issue 11): no regex guard accepts a trailing newline or non-ASCII digits and letters where it means
ASCII; finding 7: roles_from allow patterns keep `*` within one ARN segment. One test per guard, and a walk over
broker/ that fails when a new guard is written the old way."""

from __future__ import annotations

import ast
import importlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

import broker
from broker.connectors import id_token
from broker.connectors.oidc_config import OidcIdpConfig
from broker.durations import parse_duration
from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Evidence
from broker.issuers.saml import upstream_response
from broker.rules.arns import is_role_arn
from broker.rules.evaluate import evaluate
from broker.rules.sanitize import POLICY_VALUE, STS_NAME, TAG_VALUE
from broker.rules.schema import GrantSpec, RolesFrom, Rule, RuleSet
from broker.rules.templates import NAME, TemplateError, parse_template
from broker.settings import AwsConfig, KeyConfig, SessionConfig
from broker.token_exchange import ROLE_ARN as RESOURCE_ARN
from tests.factories import identity
from tests.support.ident_evidence import saml_response

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/Admin"
ROLE_CLAIM = "https://aws.amazon.com/SAML/Attributes/Role"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:saml-provider/ADFS"
ARABIC_DIGITS = "\u0661\u0661\u0661\u0661\u0662\u0662\u0662\u0662\u0663\u0663\u0663\u0663"  # ١١١١٢٢٢٢٣٣٣٣


# ---- Python regexes guarding values -------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "good"), [
    (STS_NAME, "alice@example.com"), (POLICY_VALUE, "alice"), (TAG_VALUE, "platform"), (NAME, "claims.dept"),
])
def test_compiled_guards_refuse_a_trailing_newline_whatever_the_method(pattern: re.Pattern[str], good: str) -> None:
    assert pattern.fullmatch(good)
    for method in (pattern.match, pattern.fullmatch, pattern.search):
        assert method(good + "\n") is None, (pattern.pattern, method)


@pytest.mark.parametrize(("pattern", "good"), [(id_token._KID, "key-1"), (RESOURCE_ARN, ROLE)])
def test_guards_used_with_fullmatch_refuse_a_trailing_newline(pattern: re.Pattern[str], good: str) -> None:
    """Their refusals through HTTP are in test_rules_exchange.py."""
    assert pattern.fullmatch(good) and pattern.fullmatch(good + "\n") is None


def test_template_field_names_and_role_arn_checks() -> None:
    assert parse_template("{claims.dept}").claims == {"dept"}
    with pytest.raises(TemplateError):
        parse_template("{claims.d\u0435pt}")  # Cyrillic e
    assert is_role_arn(ROLE) and not is_role_arn(ROLE + "\n") and not is_role_arn(ROLE.replace("Admin", "\u0430dmin"))


# ---- pydantic patterns (Rust regex: '$' is the end of the text, but \d and \w are Unicode) ---------------------

@pytest.mark.parametrize(("build", "good", "bad"), [
    (lambda v: GrantSpec(role=v), ROLE, [ROLE + "\n", ROLE.replace("Admin", "\u0430dmin"),
                                          ROLE.replace(ACCOUNT, ARABIC_DIGITS), ROLE.replace("Admin", "Adm\u0131n")]),
    (lambda v: GrantSpec(role=ROLE, provider=v), PROVIDER, [PROVIDER + "\n", PROVIDER.replace("ADFS", "\u0410DFS")]),
    (lambda v: GrantSpec(role=ROLE, policy_arns=[v]), "arn:aws:iam::aws:policy/ReadOnlyAccess",
     ["arn:aws:iam::aws:policy/ReadOnlyAccess\n", "arn:aws:iam::aws:policy/R\u0435adOnlyAccess"]),
    (lambda v: RolesFrom(claim="r", allow=[v], accounts=[ACCOUNT]), "arn:aws:iam::*:role/ADFS-*",
     ["arn:aws:iam::*:role/ADFS-*\n", "arn:aws:iam::*:role/\u0410DFS-*"]),
    (lambda v: RolesFrom(claim="r", allow=["arn:aws:iam::*:role/X"], accounts=[v]), ACCOUNT,
     [ACCOUNT + "\n", ARABIC_DIGITS]),
    (lambda v: Rule(id=v, grant=[GrantSpec(role=ROLE)]), "admins", ["admins\n", "adm\u0131ns"]),
    (lambda v: AwsConfig(region=v), "eu-west-1", ["eu-west-1\n", "eu-west-\u0661"]),
    (lambda v: AwsConfig(signin_region=v), "eu-west-1", ["eu-west-1\n", "eu-west-\u0661"]),
    (lambda v: KeyConfig(kid=v, file=Path("k.pem")), "k2026a", ["k2026a\n", "k2026\u0430"]),
    (lambda v: SessionConfig(secret=SecretStr(secrets.token_urlsafe(48)), cookie_name=v), "sid", ["sid\n", "s\u0131d"]),
    (lambda v: OidcIdpConfig(id=v, type="oidc", name="n", issuer="https://idp.example.com", client_id="c",
                             client_secret=SecretStr("s")), "okta", ["okta\n", "\u043ekta"]),
])
def test_field_patterns_refuse_newlines_and_look_alikes(build: Any, good: str, bad: list[str]) -> None:
    build(good)
    for value in bad:
        with pytest.raises(ValidationError):
            build(value)


@pytest.mark.parametrize("text", ["\u0661\u0662", "\u0661h", "1\u0662m", "\u00b2"])
def test_durations_take_ascii_digits_only(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_tag_keys_that_differ_only_in_case_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="differ only in case"):
        GrantSpec(role=ROLE, tags={"Team": "{email}", "team": "{email}"})


# ---- conditions: the documented semantics, anchored at the end ----------------------------------------------

def _granted(when: dict[str, Any], **who: Any) -> bool:
    rs = RuleSet.model_validate({"version": 1, "rules": [{"id": "r", "when": when, "grant": [{"role": ROLE}]}]})
    return bool(evaluate(rs, identity(**who)).grants)


@pytest.mark.parametrize("operator", [{"regex": "alice@example\\.com$"}, {"regex": "alice@example\\.com"},
                                      {"glob": "alice@example.com"}, {"glob": "*@example.com"},
                                      {"equals": "alice@example.com"}, {"ends_with": "@example.com"},
                                      {"in": ["alice@example.com"]},
                                      {"glob": "*@EXAMPLE.com", "ignore_case": True}])
def test_condition_operators_never_match_before_a_trailing_newline(operator: dict[str, Any]) -> None:
    assert _granted({"email": operator}, email="alice@example.com")
    assert not _granted({"email": operator}, email="alice@example.com\n")


def test_claim_values_in_before_after_are_times_not_durations() -> None:
    """README: a claim value is epoch or ISO 8601; only the rule's own value may be relative (-8h)."""
    when = {"claims.start": {"before": "-1d"}}
    assert _granted(when, claims={"start": ("2020-01-01T00:00:00Z",)})
    assert _granted(when, claims={"start": (str(int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())),)})
    for relative in ("-30d", "-0s", "8h", "+1h"):
        assert not _granted(when, claims={"start": (relative,)}), relative


# ---- roles_from: allow patterns within one ARN segment, ASCII, no newline -----------------------------------

def _roles_from(*values: str, allow: str = "arn:aws:iam::*:role/ADFS-*") -> list[str]:
    rs = RuleSet.model_validate({"version": 1, "rules": [{"id": "adfs", "grant": [{"via": "saml", "roles_from": {
        "claim": ROLE_CLAIM, "allow": [allow], "accounts": [ACCOUNT]}}]}]})
    return [g.role_arn for g in evaluate(rs, identity(claims={ROLE_CLAIM: values})).grants]


def test_roles_from_takes_the_plain_adfs_role() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/ADFS-Dev"
    assert _roles_from(f"{role},{PROVIDER}") == [role]
    assert _roles_from(f"{PROVIDER}, {role}") == [role]  # either order, spaces around the comma


@pytest.mark.parametrize("value", [
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-x/Admin",            # * crossed '/' (fnmatch)
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-x/y/Admin",
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-\u0430dmin",          # Cyrillic a passed \w
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-Adm\u0131n",          # dotless i
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-Admin\n",             # re.match + '$'
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-Admin\n,{PROVIDER}",
    f"arn:aws:iam::{ACCOUNT}:role/ADFS-Admin\u00a0,{PROVIDER}",  # Unicode space, once stripped away
    f"arn:aws:iam::{ACCOUNT}:role/adfs-Admin",               # allow patterns are case-sensitive
    f"arn:aws:iam::{ACCOUNT[:-1]}\u0663:role/ADFS-Admin",
])
def test_roles_from_refuses_values_outside_the_pattern(value: str) -> None:
    assert _roles_from(value) == []


def test_double_star_crosses_segments_but_never_the_account_field() -> None:
    deep = f"arn:aws:iam::{ACCOUNT}:role/ADFS-x/Admin"
    assert _roles_from(deep, allow="arn:aws:iam::*:role/ADFS-**") == [deep]
    assert _roles_from(deep, allow="arn:aws:iam::*:role/ADFS-*/*") == [deep]
    assert _roles_from(deep, allow="arn:aws:iam::1111*:role/ADFS-*") == []


def test_deny_patterns_err_wide_across_segments_and_ascii_case() -> None:
    rs = RuleSet.model_validate({"version": 1, "rules": [
        {"id": "adfs", "grant": [{"via": "saml", "roles_from": {
            "claim": ROLE_CLAIM, "allow": ["arn:aws:iam::*:role/**"], "accounts": [ACCOUNT]}}]},
        {"id": "no-admin", "effect": "deny", "roles": ["arn:aws:iam::*:role/Admin*", "arn:aws:iam::*:role/ops/*"]}]})
    for role in ("ADMIN", "admin-x", "Admin", "ops/deep/Admin", "OPS/x"):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
        assert evaluate(rs, identity(claims={ROLE_CLAIM: (f"{arn},{PROVIDER}",)})).grants == (), role
    assert evaluate(rs, identity(claims={ROLE_CLAIM: (f"arn:aws:iam::{ACCOUNT}:role/Dev,{PROVIDER}",)})).grants


@pytest.mark.parametrize("separator", ["\n,", ",\n", "\u00a0,", ",\u2003", "\t,"])
def test_passthrough_role_attribute_is_compared_as_aws_reads_it(separator: str) -> None:
    """The upstream assertion goes to AWS unchanged, so its Role value is compared with spaces trimmed only."""
    grant = RoleGrant(role_arn=f"arn:aws:iam::{ACCOUNT}:role/ADFS-Dev", via="saml", provider_arn=PROVIDER,
                      session_name="alice", source_identity=None, duration=timedelta(hours=1), passthrough=True)
    evidence = Evidence("saml_response", saml_response(grant.role_arn, PROVIDER))
    good = identity(protocol="saml", evidence=evidence, claims={ROLE_CLAIM: (f"{grant.role_arn} , {PROVIDER}",)})
    assert upstream_response(good, grant) == evidence.value
    bad = identity(protocol="saml", evidence=evidence,
                   claims={ROLE_CLAIM: (f"{grant.role_arn}{separator}{PROVIDER}",)})
    with pytest.raises(StsRefused) as info:
        upstream_response(bad, grant)
    assert info.value.reason == "passthrough_role_absent"


# ---- the next guard written the old way is caught -----------------------------------------------------------

BROKER = Path(broker.__file__).parent
UNICODE_CLASSES = re.compile(r"\\[dwsb]", re.IGNORECASE)


def _module(path: Path) -> Any:
    return importlib.import_module(".".join(("broker", *path.relative_to(BROKER).with_suffix("").parts)))


def _pattern_text(node: ast.expr, module: Any) -> str | None:
    """The regex source a call argument or receiver stands for: a literal, or a module-level name (the value
    read from the imported module, so f-strings and compiled patterns resolve exactly)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        value = getattr(module, node.id, None)
        if isinstance(value, re.Pattern):
            return str(value.pattern)
        if isinstance(value, str):
            return value
    return None


def _ends_with_dollar(pattern: str) -> bool:
    return pattern.endswith("$") and not pattern.endswith("\\$")


def _findings(tree: ast.AST, module: Any, label: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where, func = f"{label}:{node.lineno}", node.func
        if isinstance(func, ast.Attribute) and func.attr in ("match", "search"):
            receiver = func.value
            if isinstance(receiver, ast.Name) and receiver.id == "re":
                text = _pattern_text(node.args[0], module) if node.args else None
            else:
                text = _pattern_text(receiver, module)
            if text is not None and _ends_with_dollar(text):
                found.append(f"{where}: .{func.attr}() with a pattern ending in '$' (use fullmatch or \\Z)")
        for keyword in node.keywords:
            text = _pattern_text(keyword.value, module) if keyword.arg == "pattern" else None
            if text is not None and (UNICODE_CLASSES.search(text) or not text.startswith("^")
                                     or not _ends_with_dollar(text)):
                found.append(f"{where}: pattern= must be ^...$ in ASCII classes (\\d, \\w are Unicode there)")
    return found


def test_no_guard_in_broker_is_written_the_old_way() -> None:
    files = sorted(p for p in BROKER.rglob("*.py") if p.name != "__main__.py")  # importing it runs the CLI
    assert len(files) > 50
    found = [f for path in files
             for f in _findings(ast.parse(path.read_text()), _module(path), str(path.relative_to(BROKER.parent)))]
    assert found == []


def test_the_walk_catches_what_it_is_for() -> None:
    """The checker on the shapes it must catch and the ones it must let pass (a silent no-op fails here)."""
    source = "\n".join([
        "X.match(v)", "re.match(r'^b$', v)", "re.search('c$', v)", "Field(pattern=r'^\\d{12}$')",
        "Field(pattern=r'[0-9]{12}')", "Field(pattern=S)",                       # six bad ones
        "X.fullmatch(v)", "Y.match(v)", "re.match(r'^b\\Z', v)", "re.search(r'a\\$', v)",
        "Field(pattern=r'^[0-9]{12}$')", "re.fullmatch(r'^a$', v)",
    ])
    module = type("M", (), {"X": re.compile(r"^a$"), "Y": re.compile(r"\Aa\Z"), "S": r"^\w+$"})
    found = _findings(ast.parse(source), module, "sample")
    assert [int(f.split(":")[1]) for f in found] == [1, 2, 3, 4, 5, 6], found
