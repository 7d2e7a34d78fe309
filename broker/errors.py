"""One tree of errors. Each carries a reason code (for the audit log, and what the web layer maps to an
answer) and a public message safe to show anyone; `detail` is for the audit log only: it never reaches a
response. No error knows about HTTP: broker/web/errors.py maps reason or class to the HTTP status
(HTTP_STATUS), broker/web/routes_token.py to the OAuth error (OAUTH_ERRORS)."""

from __future__ import annotations

import secrets


class BrokerError(Exception):
    public_message: str = "The broker could not complete the request."
    reason: str = "internal_error"

    def __init__(self, detail: str = "", *, reason: str | None = None, public: str | None = None) -> None:
        super().__init__(detail or self.public_message)
        self.detail = detail
        self.error_id = secrets.token_hex(6)
        if reason is not None:
            self.reason = reason
        if public is not None:
            self.public_message = public

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, error_id={self.error_id!r})"


class ConfigError(BrokerError):
    """A configuration file is invalid. `problems` lists every one as 'file: field.path: message'."""

    reason = "config_invalid"
    public_message = "The broker configuration is invalid."

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class BadRequest(BrokerError):
    public_message = "The request is malformed."
    reason = "bad_request"


class PayloadTooLarge(BrokerError):
    public_message = "The request is too large."
    reason = "payload_too_large"


class NotFound(BrokerError):
    public_message = "Not found."
    reason = "not_found"


class MethodNotAllowed(BrokerError):
    public_message = "This method is not allowed here."
    reason = "method_not_allowed"


class UnknownIdp(NotFound):
    public_message = "Unknown identity provider."
    reason = "unknown_idp"


class LoginStateInvalid(BrokerError):
    """The callback does not belong to a login this browser started (tampered, replayed, expired state)."""

    public_message = "This login link is invalid or has expired. Start the login again."
    reason = "state_invalid"


class LoginRefused(BrokerError):
    """The identity provider said no (the user denied, or the IdP returned an error)."""

    public_message = "The identity provider did not complete the login."
    reason = "idp_refused"


class TokenInvalid(BrokerError):
    """What the identity provider sent could not be verified (signature, issuer, audience, time, nonce)."""

    public_message = "The identity provider's answer could not be verified. Start the login again."
    reason = "token_invalid"


class GrantInvalid(BrokerError):
    """An OAuth grant the broker issued (an authorization code, a device code, a parked authorization
    request) is unknown, used, expired, or presented with the wrong client, redirect or PKCE verifier."""

    public_message = "The authorization code is invalid, expired or already used. Run `sts-broker login` again."
    reason = "grant_invalid"


class NotAuthenticated(BrokerError):
    public_message = "You are not signed in."
    reason = "not_authenticated"


class CsrfFailed(BrokerError):
    public_message = "The form has expired or did not come from this site. Reload the page and try again."
    reason = "csrf_failed"


class NotAuthorized(BrokerError):
    """No grant for this identity, or not the role asked for. One message for both (no user enumeration)."""

    public_message = "You are not authorized for this role."
    reason = "not_authorized"


class RateLimited(BrokerError):
    public_message = "Too many requests. Try again later."
    reason = "rate_limited"

    def __init__(self, detail: str = "", *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UpstreamUnavailable(BrokerError):
    """An identity provider, JWKS or metadata endpoint did not answer in time or answered nonsense."""

    public_message = "The identity provider is not reachable right now. Try again shortly."
    reason = "idp_unavailable"


class StsRefused(BrokerError):
    """AWS STS refused the request: the role's trust policy or the token does not allow it."""

    public_message = "AWS refused to issue credentials for this role."
    reason = "sts_refused"


class StsUnavailable(BrokerError):
    """AWS STS or the federation endpoint timed out, throttled or failed."""

    public_message = "AWS is not answering right now. Try again shortly."
    reason = "sts_unavailable"


class ViaNotAvailable(BrokerError):
    public_message = "This role is granted through a path this broker version cannot issue yet."
    reason = "via_not_available"


class StoreUnavailable(BrokerError):
    public_message = "The broker's state store is unavailable. Try again shortly."
    reason = "store_unavailable"


class RoleChoiceNeeded(BadRequest):
    """Several roles are granted and the request did not name one (token exchange: `resource`)."""

    public_message = "Several roles are granted to this identity: name one as the resource."
    reason = "resource_required"

    def __init__(self, detail: str = "", *, roles: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.roles = roles


class OriginNotAllowed(BrokerError):
    """A browser request from a web origin the configuration does not allow (CORS)."""

    public_message = "This web origin may not call this endpoint."
    reason = "origin_not_allowed"


class ServerBusy(BrokerError):
    """Bounded work is at its cap (e.g. XML signature checks waiting for a worker): refused at once, not queued."""

    public_message = "The broker is busy. Try again shortly."
    reason = "busy"


class DeviceGrantError(BrokerError):
    """A device-code poll that gets no CLI session: the RFC 8628 3.5 answers (authorization_pending, slow_down,
    access_denied, expired_token: the reason is the OAuth error) and unknown or redeemed codes."""

    public_message = "The device code is not valid."
    reason = "device_code_invalid"


class UserCodeInvalid(BadRequest):
    """A user code typed at /device that names no pending request (mistyped, expired or already decided)."""

    public_message = "This code is not valid: it may be mistyped, expired or already used."
    reason = "user_code_invalid"
