"""The token endpoint's grants other than the RFC 8693 token exchange (which routes_token.py serves itself,
first, by one string comparison): each a function from the checked form to the JSON answer. Refusals are
BrokerErrors; routes_token.py turns them into RFC 6749 5.2 answers and audits them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.cli_sessions import CliSession
from broker.device_codes import GRANT_TYPE as DEVICE_CODE
from broker.service import BrokerService

Grant = Callable[[BrokerService, Mapping[str, str], str], Awaitable[dict[str, Any]]]
AUTHORIZATION_CODE = "authorization_code"


def cli_session_body(session: CliSession, token: str) -> dict[str, Any]:
    """What every grant issuing a CLI session answers (RFC 6749 5.1 plus the session's public id)."""
    return {"access_token": token, "token_type": "Bearer", "expires_in": session.seconds_left(),
            "session_id": session.session_id}


async def authorization_code(service: BrokerService, form: Mapping[str, str], client: str) -> dict[str, Any]:
    """RFC 6749 4.1.3 with RFC 7636 4.5: the loopback login's code and verifier for a CLI session."""
    session, token = await service.redeem_cli_code(form, client)
    return cli_session_body(session, token)


async def device_code(service: BrokerService, form: Mapping[str, str], client: str) -> dict[str, Any]:
    """RFC 8628 3.4: the CLI session of the person who approved the user code, once; RFC 8628 3.5 errors until
    then (DeviceGrantError: authorization_pending, slow_down, access_denied, expired_token)."""
    session, token = await service.redeem_device_code(form.get("device_code", ""), form.get("client_id", ""), client)
    return cli_session_body(session, token)


# grant_type -> its function.
GRANTS: Mapping[str, Grant] = {
    AUTHORIZATION_CODE: authorization_code,
    DEVICE_CODE: device_code,
}
