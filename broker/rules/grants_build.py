"""Turn a matched rule's grant specification into RoleGrants for one identity (templates rendered and
sanitized, roles taken from claims only through the allow-list). Pure: no I/O."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from broker.grants import RoleGrant
from broker.rules.arns import ROLE_ARN, arn_account, arn_glob_match
from broker.rules.sanitize import FEDERATED_NAME, MAX_NAME, UnusableName, policy_value, sts_name, tag_value
from broker.rules.schema import SAML_PROVIDER_ARN, GrantFields, GrantSpec, RoleDecl, RolesFrom, merged
from broker.rules.templates import MissingClaim, Template, parse_template

Claims = Mapping[str, tuple[str, ...]]
DEFAULT_DURATION = timedelta(hours=1)
DEFAULT_SESSION_NAME = "{subject}"
MAX_PACKED_POLICY = 2048


class GrantError(ValueError):
    """This grant cannot be issued for this identity; other grants are unaffected."""


@dataclass(frozen=True, slots=True)
class GrantPlan:
    """A grant specification with the defaults applied and its templates parsed, ready per identity."""

    rule_id: str
    role: str | None
    roles_from: RolesFrom | None
    fields: Mapping[str, Any]
    session_name: Template
    source_identity: Template | None
    tags: Mapping[str, Template]
    chain_from: str | None = None

    @classmethod
    def build(cls, rule_id: str, spec: GrantSpec, defaults: GrantFields) -> GrantPlan:
        fields = merged(spec, defaults)
        source = fields["source_identity"]
        return cls(rule_id, spec.role, spec.roles_from, fields,
                   parse_template(fields["session_name"] or DEFAULT_SESSION_NAME),
                   parse_template(source) if source else None,
                   {k: parse_template(v) for k, v in (fields["tags"] or {}).items()}, spec.from_)


def _pair(value: str) -> tuple[str, str | None]:
    """A claim value naming a role: 'role-arn' or the SAML Role attribute's 'role-arn,provider-arn'."""
    parts = [p.strip(" ") for p in value.split(",")]  # spaces only: a newline or Unicode space is refused
    roles = [p for p in parts if re.fullmatch(ROLE_ARN, p)]
    providers = [p for p in parts if re.fullmatch(SAML_PROVIDER_ARN, p)]
    if len(roles) != 1 or len(parts) != len(roles) + len(providers) or len(providers) > 1:
        raise GrantError(f"claim value is not a role ARN or a role,provider pair: {value[:80]!r}")
    return roles[0], providers[0] if providers else None


def roles_for(plan: GrantPlan, claims: Claims) -> list[tuple[str, str | None]]:
    if plan.role is not None:
        return [(plan.role, plan.fields["provider"])]
    assert plan.roles_from is not None
    source, found = plan.roles_from, []
    for value in claims.get(source.claim, ()):
        role, provider = _pair(value)
        account = arn_account(role)
        allowed = any(arn_glob_match(role, pattern) for pattern in source.allow)
        if account not in source.accounts or not allowed:
            raise GrantError(f"role {role} from claim {source.claim} is not allowed by this rule")
        if provider is not None and arn_account(provider) != account:
            raise GrantError(f"provider and role of {value[:80]!r} are in different accounts")
        found.append((role, provider or plan.fields["provider"]))
    return found


def _policy(text: str | None, claims: Claims) -> str | None:
    if text is None:
        return None

    def render(node: Any) -> Any:
        if isinstance(node, str):
            return parse_template(node).render_each(claims, policy_value)
        if isinstance(node, dict):
            return {render(k): render(v) for k, v in node.items()}
        if isinstance(node, list):
            return [render(v) for v in node]
        return node

    packed = json.dumps(render(json.loads(text)), separators=(",", ":"))
    if len(packed) > MAX_PACKED_POLICY:
        raise GrantError(f"the rendered session policy has {len(packed)} characters, over {MAX_PACKED_POLICY}")
    return packed


def build(plan: GrantPlan, claims: Claims, mfa: bool, roles: Mapping[str, RoleDecl]) -> list[RoleGrant]:
    fields = plan.fields
    if fields["require_mfa"] and not mfa:
        raise GrantError("this grant requires MFA")
    via = fields["via"] or "web_identity"
    # GetFederationToken's Name is 2..32 characters; every other path's RoleSessionName 2..64.
    name_limit = FEDERATED_NAME if via == "federation_token" else MAX_NAME
    try:
        common: dict[str, Any] = {
            "via": via,
            "session_name": sts_name(plan.session_name.render(claims), name_limit),
            "source_identity": sts_name(plan.source_identity.render(claims)) if plan.source_identity else None,
            "tags": {k: tag_value(t.render(claims)) for k, t in plan.tags.items()},
            "transitive_tags": tuple(fields["transitive_tags"] or ()),
            "policy": _policy(fields["policy"], claims),
            "policy_arns": tuple(fields["policy_arns"] or ()),
            "rule_id": plan.rule_id,
            "passthrough": fields["token"] == "passthrough",  # noqa: S105 (a mode, not a secret)
            "external_id": fields["external_id"],
            "chain_from": plan.chain_from,
        }
    except (MissingClaim, UnusableName) as exc:
        raise GrantError(str(exc)) from None
    duration = fields["duration"] or DEFAULT_DURATION
    grants = []
    for role, provider in roles_for(plan, claims):
        declared = roles.get(role)
        capped = min(duration, declared.max_duration) if declared else duration
        grants.append(RoleGrant(role_arn=role, provider_arn=provider, duration=capped, **common))
    return grants
