"""rules.yaml: the shape of the rules language, validated field by field.

Conditions, templates and policies are compiled here (once, at load) so that a bad regex or an unknown
template field is a load error with its path, never a surprise at evaluation time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from broker.durations import Duration
from broker.rules.arns import IAM_NAME, PARTITION, ROLE_ARN, arn_account, arn_glob_match, arn_partition
from broker.rules.conditions import ConditionError, Node, parse
from broker.rules.paths import EXTERNAL_ID, FEDERATION_MAX, STS_MAX, HubFacts, chain_problems, via_problems
from broker.rules.sanitize import tag_key_ok
from broker.rules.templates import Template, TemplateError, parse_template

# These patterns serve pydantic (Rust regex: '$' is the end of the text, but \w and \d are Unicode) and
# Python's re (always fullmatch: '$' alone would accept a trailing newline), so classes are spelled in ASCII.
SAML_PROVIDER_ARN = rf"^arn:({PARTITION}):iam::([0-9]{{12}}):saml-provider/[A-Za-z0-9_.-]{{1,128}}$"
POLICY_ARN = rf"^arn:({PARTITION}):iam::([0-9]{{12}}|aws):policy/({IAM_NAME}+/)*{IAM_NAME}{{1,128}}$"
ARN_GLOB = r"^arn:[A-Za-z0-9*?-]+:iam::[0-9*?]{1,12}:role/[A-Za-z0-9_+=,.@/*?-]+$"
ACCOUNT_ID = r"^[0-9]{12}$"
MIN_DURATION, MAX_DURATION = timedelta(minutes=15), STS_MAX
MAX_TAGS, MAX_POLICY_ARNS = 50, 10
Via = Literal["saml", "web_identity", "assume_role", "federation_token"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, arbitrary_types_allowed=True)


def _template(source: str) -> Template:
    try:
        return parse_template(source)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


def _bounded(duration: timedelta) -> timedelta:
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError("duration must be between 15m and 12h (the AWS STS bounds)")
    return duration


def _any_path(duration: timedelta) -> timedelta:
    """A grant's duration: 15m..36h here (36h: federation tokens); each path's own bound in rules/paths.py."""
    if not MIN_DURATION <= duration <= FEDERATION_MAX:
        raise ValueError("duration must be between 15m and 12h (36h for via federation_token)")
    return duration


TemplateText = Annotated[str, AfterValidator(lambda s: (_template(s), s)[1])]
SessionDuration = Annotated[Duration, AfterValidator(_bounded)]
GrantDuration = Annotated[Duration, AfterValidator(_any_path)]


def _policy_text(value: Any) -> str:
    """A session policy as YAML mapping or JSON text; stored as canonical JSON text (a template)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("policy text is not JSON") from None
    if not isinstance(value, dict) or "Statement" not in value:
        raise ValueError("a session policy is a mapping with Version and Statement")
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    for leaf in _string_leaves(value):
        _template(leaf)
    return text


def _string_leaves(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _string_leaves(k) + _string_leaves(v)]
    if isinstance(node, list):
        return [s for v in node for s in _string_leaves(v)]
    return []


def _yaml_scalar(value: Any) -> str:
    """A policy written as YAML may hold unquoted dates (`DateLessThan: {aws:CurrentTime: 2027-01-01}`), which
    YAML reads as dates: IAM takes them as ISO 8601 text. Anything else JSON cannot say is a schema error."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise ValueError(f"policy holds a {type(value).__name__}, which JSON cannot express")

class GrantFields(Model):
    """Every grant field; `defaults:` sets any of them for all grants."""

    via: Via | None = None
    provider: str | None = Field(default=None, pattern=SAML_PROVIDER_ARN)
    duration: GrantDuration | None = None
    session_name: TemplateText | None = None
    source_identity: TemplateText | None = None
    tags: dict[str, TemplateText] | None = Field(default=None, max_length=MAX_TAGS)
    transitive_tags: list[str] | None = None
    policy: Annotated[str, AfterValidator(_policy_text)] | None = Field(default=None)
    policy_arns: list[Annotated[str, Field(pattern=POLICY_ARN)]] | None = Field(default=None,
                                                                                max_length=MAX_POLICY_ARNS)
    require_mfa: bool | None = None
    token: Literal["minted", "passthrough"] | None = None
    external_id: str | None = Field(default=None, pattern=EXTERNAL_ID)  # via assume_role: AWS's ExternalId

    @field_validator("policy", mode="before")
    @classmethod
    def _policy_any(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else json.dumps(value, default=_yaml_scalar)

    @field_validator("tags")
    @classmethod
    def _tag_keys(cls, tags: dict[str, str] | None) -> dict[str, str] | None:
        for key in tags or {}:
            if not tag_key_ok(key):
                raise ValueError(f"tag key {key[:40]!r}: 1-128 letters, digits, spaces or _.:/=+-@, not 'aws:...'")
        folded = [key.casefold() for key in tags or {}]
        if len(set(folded)) != len(folded):  # AWS compares tag keys ignoring case: STS would refuse them all
            raise ValueError("two tag keys differ only in case")
        return tags


class RolesFrom(Model):
    """Role ARNs taken from a claim (as IdPs that send the AWS Role attribute do), only when each value
    matches an allowed ARN pattern and an allowed account."""

    claim: str = Field(min_length=1)
    allow: list[Annotated[str, Field(pattern=ARN_GLOB)]] = Field(min_length=1)
    accounts: list[Annotated[str, Field(pattern=ACCOUNT_ID)]] = Field(min_length=1)


class GrantSpec(GrantFields):
    role: str | None = Field(default=None, pattern=ROLE_ARN)
    roles_from: RolesFrom | None = None
    # via assume_role: the hub role (another grant of the same person, via web_identity or saml) to chain from.
    from_: str | None = Field(default=None, alias="from", pattern=ROLE_ARN)

    @model_validator(mode="after")
    def _one_role_source(self) -> GrantSpec:
        if (self.role is None) == (self.roles_from is None):
            raise ValueError("a grant names exactly one of role or roles_from")
        return self


class RoleDecl(Model):
    max_duration: SessionDuration = MAX_DURATION
    description: str = ""


class Rule(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    effect: Literal["allow", "deny"] = "allow"
    description: str = ""
    idps: list[str] | None = None
    when: dict[str, Any] | None = None
    require_mfa: bool = False
    grant: list[GrantSpec] = []
    roles: list[Annotated[str, Field(pattern=ARN_GLOB)]] | None = None
    _condition: Node | None = PrivateAttr(default=None)

    @property
    def condition(self) -> Node | None:
        """The compiled `when` (None: always holds)."""
        return self._condition

    @field_validator("when")
    @classmethod
    def _condition_compiles(cls, when: dict[str, Any] | None) -> dict[str, Any] | None:
        if when:
            try:
                parse(when)
            except ConditionError as exc:
                raise ValueError(str(exc)) from None
        return when

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if self.effect == "allow" and not self.grant:
            raise ValueError("an allow rule needs at least one grant")
        if self.effect == "deny" and self.grant:
            raise ValueError("a deny rule has no grants (roles: names the role ARN patterns it removes)")
        if self.effect == "allow" and self.roles is not None:
            raise ValueError("roles: belongs to deny rules")
        if self.when:
            self._condition = parse(self.when)
        return self


class IdentitySpec(Model):
    """An identity written by hand for tests and `rules explain`."""

    idp: str = "test"
    protocol: Literal["oidc", "saml", "token"] = "oidc"
    issuer: str = "https://idp.example.com"
    subject: str
    email: str | None = None
    email_verified: bool | None = None
    groups: list[str] = []
    mfa: bool = False
    claims: dict[str, Any] = {}


class ExpectedGrant(Model):
    """A grant a test expects. Fields left out are not compared; role is always compared."""

    role: str
    via: Via | None = None
    duration: Duration | None = None
    session_name: str | None = None
    source_identity: str | None = None
    tags: dict[str, str] | None = None
    policy: dict[str, Any] | None = None
    from_: str | None = Field(default=None, alias="from")


class TestCase(Model):
    name: str
    identity: IdentitySpec
    expect: list[ExpectedGrant]


class RuleSet(Model):
    version: Literal[1]
    accounts: dict[Annotated[str, Field(pattern=ACCOUNT_ID)], str] = {}
    defaults: GrantFields = GrantFields()
    roles: dict[Annotated[str, Field(pattern=ROLE_ARN)], RoleDecl] = {}
    rules: list[Rule]
    tests: list[TestCase] = []
    _compiled: Any = PrivateAttr(default=None)

    def compiled_cache(self, build: Callable[[RuleSet], Any]) -> Any:
        """What `build` makes of this rule set, built once (rule sets are immutable)."""
        if self._compiled is None:
            self._compiled = build(self)
        return self._compiled

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        problems = [f"duplicate rule ids: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}"] \
            if len(set(ids)) != len(ids) else []
        hubs = _hub_facts(self)
        for i, rule in enumerate(self.rules):
            for j, spec in enumerate(rule.grant):
                found = grant_problems(spec, self.defaults, self.roles)
                if spec.from_ is not None:
                    found += chain_problems(merged(spec, self.defaults), spec.from_, hubs(spec.from_))
                problems += [f"rules.{i}.grant.{j}: {p}" for p in found]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def merged(spec: GrantFields, defaults: GrantFields) -> dict[str, Any]:
    """The grant's own fields over the rule set's defaults."""
    values = {name: getattr(defaults, name) for name in GrantFields.model_fields}
    values.update({name: getattr(spec, name) for name in GrantFields.model_fields if getattr(spec, name) is not None})
    return values


def _hub_facts(ruleset: RuleSet) -> Callable[[str], HubFacts | None]:
    """What the rule set grants of a role `from:` names: its explicit grants, and roles_from grants whose
    allow-list could yield it."""
    explicit: dict[str, HubFacts] = {}
    dynamic: list[tuple[RolesFrom, dict[str, Any]]] = []
    for rule in ruleset.rules:
        for spec in rule.grant:
            fields = merged(spec, ruleset.defaults)
            if spec.role is not None:
                explicit.setdefault(spec.role, HubFacts()).add(fields)
            elif spec.roles_from is not None:
                dynamic.append((spec.roles_from, fields))

    def facts(arn: str) -> HubFacts | None:
        found = explicit.get(arn)
        for source, fields in dynamic:
            if arn_account(arn) in source.accounts and any(arn_glob_match(arn, p) for p in source.allow):
                found = found or HubFacts()
                found.add(fields)
        return found
    return facts


def grant_problems(spec: GrantSpec, defaults: GrantFields, roles: dict[str, RoleDecl]) -> list[str]:
    """Checks that need the defaults or the role declarations: SAML providers, durations, tag keys, what
    each path (via) allows."""
    fields = merged(spec, defaults)
    problems = via_problems(fields, spec.from_)
    if fields["via"] == "saml" and spec.role is not None:
        provider = fields["provider"]
        if provider is None:
            problems.append("via saml needs provider: the IAM SAML provider ARN")
        elif (arn_account(provider), arn_partition(provider)) != (arn_account(spec.role), arn_partition(spec.role)):
            problems.append("the SAML provider must be in the role's account and partition")
    declared = roles.get(spec.role or "")
    if declared is not None and fields["duration"] is not None and fields["duration"] > declared.max_duration:
        problems.append(f"duration exceeds the declared max_duration of {spec.role}")
    unknown = set(fields["transitive_tags"] or []) - set(fields["tags"] or {})
    if unknown:
        problems.append(f"transitive_tags names keys that are not tags: {', '.join(sorted(unknown))}")
    # Pass-through forwards the IdP's own ID token (web_identity) or SAMLResponse (saml); AssumeRole has no
    # upstream token to forward.
    if fields["token"] == "passthrough" and fields["via"] not in (None, "web_identity", "saml"):  # noqa: S105
        problems.append("token: passthrough applies to via web_identity or saml only")
    return problems
