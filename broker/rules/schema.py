"""rules.yaml, first cut: claim conditions (equals, in, contains) granting role ARNs.

The shape follows DESIGN.md; the rules-language issue grows the operators and grant fields.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from broker.durations import Duration

ROLE_ARN = r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")
TEMPLATE_NAMES = re.compile(r"^(email|subject|idp|claims\.[A-Za-z0-9_:./-]+)$")
MIN_DURATION, MAX_DURATION = timedelta(minutes=15), timedelta(hours=12)

Scalar = str | int | bool


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _valid_template(text: str) -> str:
    for name in TEMPLATE_FIELD.findall(text):
        if not TEMPLATE_NAMES.match(name):
            raise ValueError(f"unknown template field {{{name}}}: use email, subject, idp or claims.NAME")
    return text


Template = Annotated[str, AfterValidator(_valid_template)]


def _bounded(duration: timedelta) -> timedelta:
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError("duration must be between 15m and 12h (AWS STS bounds)")
    return duration


class Condition(Model):
    """All operators given must hold. A list claim matches when any element matches."""

    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    contains: Scalar | None = None

    @model_validator(mode="after")
    def _some_operator(self) -> Condition:
        if self.equals is None and self.in_ is None and self.contains is None:
            raise ValueError("a condition needs an operator: equals, in or contains")
        return self


class GrantSpec(Model):
    role: str = Field(pattern=ROLE_ARN)
    via: Literal["web_identity"] = "web_identity"
    # minted: the broker signs a token of its own; passthrough: forward the IdP's original ID token
    # (only when IAM trusts that IdP directly, e.g. Google for mobile apps).
    token: Literal["minted", "passthrough"] = "minted"
    duration: Annotated[Duration, AfterValidator(_bounded)] = timedelta(hours=1)
    session_name: Template = "{email}"
    tags: dict[str, Template] = {}


class Rule(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    effect: Literal["allow", "deny"] = "allow"
    description: str = ""
    idps: list[str] | None = None
    when: dict[str, Condition] = {}
    require_mfa: bool = False
    grant: list[GrantSpec] = []
    roles: list[str] | None = Field(default=None, description="deny only: the role ARNs removed; all if absent")

    @model_validator(mode="after")
    def _effect_shape(self) -> Rule:
        if self.effect == "allow" and not self.grant:
            raise ValueError("an allow rule needs at least one grant")
        if self.effect == "deny" and self.grant:
            raise ValueError("a deny rule has no grants (use roles: to name what it removes)")
        if self.effect == "allow" and self.roles is not None:
            raise ValueError("roles: belongs to deny rules")
        return self


class RuleSet(Model):
    version: Literal[1]
    accounts: dict[Annotated[str, Field(pattern=r"^\d{12}$")], str] = {}
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        return self
