"""What an AssumeRole call makes of its caller's session, as the IAM user guide describes role chaining. Pure.

A role session calling AssumeRole is role chaining: at most one hour, its SourceIdentity carries into the new
session and cannot change, and its transitive session tags carry too and cannot be overridden. The trust policy
then needs sts:TagSession for any tag (passed or carried) and sts:SetSourceIdentity for a source identity (set or
carried).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broker.devstack import trust_policy as trust
from broker.devstack.assume_role_checks import AssumeRoleRequest, invalid_parameter
from broker.devstack.callers import ASSUMED_ROLE, Caller
from broker.devstack.web_identity_checks import StsError

CHAINED_MAX_SECONDS = 3600
DEFAULT_SECONDS = 3600


@dataclass(frozen=True)
class NextSession:
    chained: bool
    seconds: int
    tags: Mapping[str, str]  # carried transitive tags first, then the request's
    transitive: tuple[str, ...]
    source_identity: str | None


def not_authorized(caller: Caller, action: str, resource: str) -> StsError:
    return StsError("AccessDenied", f"User: {caller.arn} is not authorized to perform: {action} on resource: "
                    f"{resource}", 403)


def _inherited(caller: Caller) -> dict[str, str]:
    if caller.kind != ASSUMED_ROLE:
        return {}
    keys = {key.lower() for key in caller.transitive}
    return {key: value for key, value in caller.tags.items() if key.lower() in keys}


def next_session(caller: Caller, request: AssumeRoleRequest, role_arn: str, max_session: int) -> NextSession:
    chained = caller.kind == ASSUMED_ROLE
    seconds = request.session.duration or DEFAULT_SECONDS
    if chained and seconds > CHAINED_MAX_SECONDS:
        raise StsError("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for "
                       "roles assumed by role chaining.")
    if seconds > max_session:
        raise StsError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for "
                       "this role.")
    inherited = _inherited(caller)
    clash = sorted(k for k in request.session.tags if k.lower() in {i.lower() for i in inherited})
    if clash:
        raise invalid_parameter(f"The session tag {clash[0]} cannot override a transitive tag inherited from the "
                                "calling session.")
    if caller.source_identity and request.source_identity not in (None, caller.source_identity):
        raise not_authorized(caller, trust.SET_SOURCE_IDENTITY, role_arn)  # it cannot change along a chain
    transitive = list(inherited)
    transitive += [k for k in request.transitive if k.lower() not in {t.lower() for t in transitive}]
    return NextSession(chained=chained, seconds=seconds, tags={**inherited, **request.session.tags},
                       transitive=tuple(transitive), source_identity=caller.source_identity or request.source_identity)


def principal_spellings(caller: Caller, *, with_account: bool) -> frozenset[str]:
    """How Principal.AWS can name this caller; the account forms only when asked (they need an identity policy)."""
    names = {caller.arn, caller.principal_arn}
    if with_account:
        partition = caller.arn.split(":")[1]
        names |= {f"arn:{partition}:iam::{caller.account}:root", caller.account}
    return frozenset(names)


def trust_context(caller: Caller, request: AssumeRoleRequest, session: NextSession) -> dict[str, tuple[str, ...]]:
    """The condition keys IAM offers on an AssumeRole call (lower-cased, as trust_policy expects)."""
    context: dict[str, tuple[str, ...]] = {
        "aws:principalarn": (caller.principal_arn,), "aws:principalaccount": (caller.account,),
        "aws:principaltype": ("AssumedRole" if caller.kind == ASSUMED_ROLE else "User",),
        "sts:rolesessionname": (request.session_name,),
    }
    context.update({f"aws:principaltag/{key}".lower(): (value,) for key, value in caller.tags.items()})
    optional = {"sts:externalid": request.external_id, "sts:sourceidentity": session.source_identity,
                "aws:sourceidentity": caller.source_identity}
    context.update({key: (value,) for key, value in optional.items() if value is not None})
    if request.session.tags:
        context["aws:tagkeys"] = tuple(request.session.tags)
        context.update({f"aws:requesttag/{k}".lower(): (v,) for k, v in request.session.tags.items()})
    if request.transitive:
        context["sts:transitivetagkeys"] = request.transitive
    return context


def trust_request(caller: Caller, request: AssumeRoleRequest, session: NextSession, *,
                  with_account: bool) -> trust.TrustRequest:
    actions = trust.required_actions(tagged=bool(session.tags), source_identity=session.source_identity is not None,
                                     action=trust.ASSUME_ROLE)
    return trust.TrustRequest("", actions, trust_context(caller, request, session),
                              aws_principals=principal_spellings(caller, with_account=with_account))
