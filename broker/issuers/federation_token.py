"""GetFederationToken for one grant, with the broker's own IAM user keys (AWS's classic custom identity broker
sample, for console-only federated users).

The federated user can do what both the broker's IAM user and the grant's session policy allow (the rules
require one: without it the credentials can do nothing); the credentials cannot call IAM, and of STS only
GetCallerIdentity (outputs/formats.py says so); the console takes no SessionDuration for them
(outputs/console.py). AWS issues federation tokens only to long-term IAM user keys: temporary broker
credentials (a role session) are refused here, before any call.

AssumeRole is preferred where it fits: a role's permissions and trust are managed in IAM per role, sessions
carry SourceIdentity and transitive tags, and no long-term key has to live in the broker.
"""

from __future__ import annotations

from typing import Protocol

from broker.errors import StsRefused
from broker.grants import RoleGrant
from broker.identity import Identity
from broker.issuers.assume_role import OwnKeys
from broker.issuers.credentials import CallerKeys, Credentials


class FederationSts(Protocol):
    async def get_federation_token(self, grant: RoleGrant, caller: CallerKeys) -> Credentials: ...


class FederationTokenIssuer:
    def __init__(self, sts: FederationSts, own: OwnKeys) -> None:
        self._sts, self._own = sts, own

    async def issue(self, identity: Identity, grant: RoleGrant) -> Credentials:
        caller = await self._own.current()
        if caller.temporary:
            raise StsRefused("GetFederationToken with temporary broker credentials", reason="federation_needs_iam_user",
                             public="AWS issues federation tokens only with an IAM user's long-term keys; the "
                                    "broker's own credentials are temporary.")
        return await self._sts.get_federation_token(grant, caller)
