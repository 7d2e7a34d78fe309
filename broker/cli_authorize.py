"""`sts-broker login` through the browser: the OAuth 2.0 authorization code grant (RFC 6749 4.1) with PKCE
(RFC 7636, S256 only) to a loopback redirect (RFC 8252 7.3), without HTTP.

1. `check_request`: the query of GET /oauth2/authorize, refused whole when anything is off (never redirected
   to: a redirect_uri that is not loopback is never used);
2. `park` / `parked`: the checked request kept server-side under a random id while the person signs in and
   consents (the consent form and the login's return path carry only that id);
3. `issue_code`: after consent, a one-time code (60 s) bound to the client, the redirect_uri, the challenge,
   the person and their browser session's expiry, sealed in the store under a hash of the code;
4. `redeem`: the token endpoint pops it (atomic: of two redemptions one wins), then checks client_id,
   redirect_uri and the verifier; any mismatch has already used the code up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from broker.cli_sessions import clean_device_name
from broker.errors import BadRequest, GrantInvalid
from broker.identity import Identity
from broker.identity_codec import identity_from_dict, identity_to_dict
from broker.sealing import Sealer
from broker.store import StateStore

CLI_CLIENT_ID = "sts-broker-cli"
CODE_TTL = 60.0
PARKED_TTL = 600.0  # as long as a login may take
# RFC 8252 7.3: an IP literal (127.0.0.1 or [::1]), any port, a plain path. Matched on the raw text, so
# userinfo (http://127.0.0.1@evil.example), another host (127.0.0.1.evil.example), a query, a fragment,
# a backslash or a percent-encoding never pass.
LOOPBACK_REDIRECT = re.compile(r"http://(127\.0\.0\.1|\[::1\]):([1-9][0-9]{0,4})(/[A-Za-z0-9._~/-]*)?", re.ASCII)
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}", re.ASCII)  # base64url of a SHA-256 digest, unpadded
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}", re.ASCII)  # RFC 7636 4.1
STATE = re.compile(r"[\x21-\x7e]{1,256}", re.ASCII)


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    code_challenge: str
    state: str
    device_name: str
    requested_at: float


def _bad(reason: str, public: str, detail: str = "") -> BadRequest:
    return BadRequest(detail or public, reason=reason, public=public)


def is_loopback_redirect(uri: str) -> bool:
    match = LOOPBACK_REDIRECT.fullmatch(uri)
    return match is not None and int(match.group(2)) <= 65535


def check_request(query: Mapping[str, str]) -> AuthorizeRequest:
    """The authorization request, or BadRequest naming the first thing wrong (nothing is redirected)."""
    if query.get("client_id") != CLI_CLIENT_ID:
        raise BadRequest(f"client_id {query.get('client_id', '')[:64]!r}", reason="client_unknown",
                         public=f"Unknown client_id (this broker knows {CLI_CLIENT_ID}).")
    redirect_uri = query.get("redirect_uri", "")
    if not is_loopback_redirect(redirect_uri):
        raise _bad("redirect_uri_invalid", "redirect_uri must be http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH.",
                   f"redirect_uri {redirect_uri[:200]!r}")
    if query.get("response_type") != "code":
        raise _bad("response_type_unsupported", "response_type must be code.")
    if query.get("code_challenge_method") != "S256":
        raise _bad("pkce_method_unsupported", "PKCE is required, with code_challenge_method=S256.",
                   f"code_challenge_method {query.get('code_challenge_method', '')[:16]!r}")
    if not CHALLENGE.fullmatch(query.get("code_challenge", "")):
        raise _bad("pkce_challenge_invalid", "code_challenge must be the base64url SHA-256 of the verifier.")
    state = query.get("state", "")
    if not STATE.fullmatch(state):
        raise _bad("state_invalid_format", "state is required (1-256 visible ASCII characters).")
    return AuthorizeRequest(CLI_CLIENT_ID, redirect_uri, query["code_challenge"], state,
                            clean_device_name(query.get("device_name")), time.time())


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Redeemed:
    identity: Identity = field(repr=False)
    device_name: str
    not_after: float  # the browser session's expiry
    code_hash: str  # to tie the session to its code (a replayed code revokes it, RFC 6749 4.1.2)


class CliAuthorize:
    def __init__(self, store: StateStore, secret: str) -> None:
        self._store = store
        self._sealer = Sealer(secret, purpose="sts-broker cli authorization v1")

    def __repr__(self) -> str:
        return "CliAuthorize()"

    async def park(self, request: AuthorizeRequest) -> str:
        request_id = secrets.token_urlsafe(16)
        key = f"cli_authorize:{request_id}"
        await self._store.put(key, self._sealer.seal(json.dumps(asdict(request)), key), PARKED_TTL)
        return request_id

    async def parked(self, request_id: str, *, use: bool = False) -> AuthorizeRequest:
        """The parked request (`use`: taken, single use). GrantInvalid when unknown, used or expired."""
        key = f"cli_authorize:{request_id[:64]}"
        raw = await (self._store.pop(key) if use else self._store.get(key))
        opened = None if raw is None else self._sealer.open(raw, key)
        if opened is None:
            raise GrantInvalid("no parked authorization request under this id", reason="authorize_request_unknown",
                               public="This sign-in request has expired or was already answered. Run "
                                      "`sts-broker login` again.")
        return AuthorizeRequest(**json.loads(opened))

    async def issue_code(self, request: AuthorizeRequest, identity: Identity, not_after: float) -> str:
        code = secrets.token_urlsafe(32)
        key = f"cli_code:{code_digest(code)}"
        data = {"client_id": request.client_id, "redirect_uri": request.redirect_uri,
                "challenge": request.code_challenge, "device": request.device_name, "not_after": not_after,
                "identity": identity_to_dict(identity)}
        await self._store.put(key, self._sealer.seal(json.dumps(data), key), CODE_TTL)
        return code

    async def redeem(self, form: Mapping[str, str]) -> Redeemed:
        """The token endpoint's grant_type=authorization_code: the code is used up first, whatever follows."""
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        if not code or not verifier or not form.get("redirect_uri") or not form.get("client_id"):
            raise _bad("parameter_missing", "code, redirect_uri, client_id and code_verifier are required.")
        digest = code_digest(code)
        key = f"cli_code:{digest}"
        raw = await self._store.pop(key) if len(code) <= 128 else None
        opened = None if raw is None else self._sealer.open(raw, key)
        if opened is None:
            raise GrantInvalid("authorization code unknown, used or expired", reason="code_invalid")
        data = json.loads(opened)
        self._check_binding(data, form, verifier)
        return Redeemed(identity_from_dict(data["identity"]), str(data["device"]), float(data["not_after"]), digest)

    @staticmethod
    def _check_binding(data: Mapping[str, object], form: Mapping[str, str], verifier: str) -> None:
        if form.get("client_id") != data["client_id"]:
            raise GrantInvalid("code issued to another client_id", reason="code_client_mismatch")
        if form.get("redirect_uri") != data["redirect_uri"]:
            raise GrantInvalid("redirect_uri differs from the authorization request's", reason="code_redirect_mismatch")
        if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(s256(verifier), str(data["challenge"])):
            raise GrantInvalid("code_verifier does not match the code_challenge", reason="pkce_failed")
