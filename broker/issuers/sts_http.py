"""Every STS call on the event loop: the STS Query API over a small keep-alive HTTP/1.1 pool, for every flow
(browser logins and token exchange alike). AssumeRoleWithWebIdentity and AssumeRoleWithSAML are unsigned by
design: a form POST and an XML answer. AssumeRole and GetFederationToken are the same POST signed with SigV4
by botocore's signer (sts_params.py), with the broker's own or a hub session's credentials. boto3 in a worker
thread costs ~2 ms of GIL-holding CPU per call and its thread pool caps the calls in flight (anyio's
default: 40); httpx's pool grows slower with every connection it holds; aiohttp costs about twice this
client's CPU per call (140 us against 75 us on uvloop, measured against the stub STS). Here each call is a
coroutine on the loop, and the HTTP answer is parsed by httptools (llhttp, also what uvicorn serves with):
this module only pools connections, writes the request and caps what it reads.

Same contract as `sts_client.StsClient`'s calls: the same parameters, timeouts (connect, read) and
error mapping (`sts_error`, which boto3's `map_client_error` also uses: no botocore object is faked), bounded
retries with jitter for throttling and 5xx (`sts_max_attempts`), one for a dropped keep-alive connection.
Neither the token nor the credentials ever reach a log or an exception message.
"""

from __future__ import annotations

import asyncio
import functools
import random
import ssl
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from urllib.parse import quote, urlsplit

import httptools
from lxml import etree  # type: ignore[import-untyped]

from broker.errors import BrokerError, StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.credentials import CallerKeys, Credentials
from broker.issuers.sts_errors import is_unavailable_code, sts_error
from broker.issuers.sts_params import assume_role_params, federation_token_params, query_pairs, sigv4_headers
from broker.settings import AwsConfig
from broker.telemetry import measured_sts

STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
MAX_RESPONSE_BYTES = 256 * 1024
MAX_HEAD_BYTES = 16 * 1024
# All bytes of one answer, framing included: bounds what httptools buffers while a header line never ends.
MAX_WIRE_BYTES = MAX_HEAD_BYTES + 2 * MAX_RESPONSE_BYTES
ACTION = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&"
SAML_ACTION = "Action=AssumeRoleWithSAML&Version=2011-06-15&"
_RETRIED_STATUS = {500, 502, 503, 504}
_THROTTLED = (b"Throttling", b"ThrottlingException", b"RequestLimitExceeded")


def default_endpoint(region: str) -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        return cls(parts.hostname or "", parts.port or (443 if tls else 80), parts.path or "/", tls)

    @property
    def authority(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.authority}{self.path}"


class _Dropped(Exception):
    """A reused keep-alive connection was closed by the server before answering: safe to retry at once."""


class _Unreadable(Exception):
    """The answer broke HTTP/1.1 (as llhttp reads it) or a size cap."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time. Responses are parsed by httptools (llhttp, the
    parser Node.js uses): status, Content-Length or chunked bodies, keep-alive. This class only counts the
    body against its cap and hands the answer over."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self.open = False
        self.keep_alive = False
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._head_size = self._wire = 0
        self._received = self._began = self._complete = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its interface.
        self.transport, self.open = cast(asyncio.Transport, transport), True

    # -- httptools callbacks --
    def on_message_begin(self) -> None:
        if self._began:  # bytes after the answer: nothing was asked for them
            raise _Unreadable("more than one answer to one request")
        self._began = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD_BYTES:
            raise _Unreadable("response head too large")
        if name.lower() == b"content-length" and (not value.strip().isdigit() or int(value) > MAX_RESPONSE_BYTES):
            raise _Unreadable("bad or oversized Content-Length")

    def on_headers_complete(self) -> None:
        if self._parser is not None:  # llhttp answers this only while the head is current
            self.keep_alive = self._parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_RESPONSE_BYTES:
            raise _Unreadable("body too large")
        self._body.append(data)

    def on_message_complete(self) -> None:
        self._complete = True

    # -- asyncio callbacks --
    def data_received(self, data: bytes) -> None:
        waiter, parser = self._waiter, self._parser
        if waiter is None or waiter.done() or parser is None:
            self.open = False  # bytes nobody asked for: this connection is not reusable
            self.close()
            return
        self._received = True
        self._wire += len(data)
        try:
            if self._wire > MAX_WIRE_BYTES:
                raise _Unreadable("answer too large")
            parser.feed_data(data)
        except (httptools.HttpParserError, _Unreadable) as exc:
            cause = exc.__context__ if isinstance(exc.__context__, _Unreadable) else exc
            waiter.set_exception(StsUnavailable(f"STS answer unreadable: {str(cause)[:100]}", reason="sts_bad_answer"))
            self.open = False
            self.close()
            return
        if self._complete:
            waiter.set_result((parser.get_status_code(), b"".join(self._body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Dropped() if self.reused and not self._received
                                 else ConnectionError("STS closed the connection mid-answer"))

    def usable(self) -> bool:
        return self.open and self.keep_alive and self.transport is not None and not self.transport.is_closing() \
            and self._waiter is not None and self._waiter.done()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.transport is None:
            raise ConnectionError("not connected")
        self._parser = httptools.HttpResponseParser(self)
        self._body, self._size, self._head_size, self._wire = [], 0, 0, 0
        self._received = self._began = self._complete = self.keep_alive = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


class HttpStsClient:
    def __init__(self, aws: AwsConfig, *, max_connections: int = 256) -> None:
        self._endpoint = Endpoint.parse(aws.sts_endpoint_url or default_endpoint(aws.region))
        self._connect_timeout = aws.connect_timeout.total_seconds()
        self._read_timeout = aws.read_timeout.total_seconds()
        self._attempts, self._backoff = aws.sts_max_attempts, aws.sts_retry_backoff.total_seconds()
        self._region = aws.region
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._head = (f"POST {self._endpoint.path} HTTP/1.1\r\nHost: {self._endpoint.authority}\r\n"
                      "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
                      "Accept-Encoding: identity\r\nUser-Agent: sts-broker\r\n").encode()

    def __repr__(self) -> str:
        return f"HttpStsClient({self._endpoint.authority!r}, idle={len(self._idle)})"

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    @measured_sts("AssumeRoleWithWebIdentity")
    async def assume_role_with_web_identity(self, grant: RoleGrant, token: str) -> Credentials:
        scope = _scope_params(grant.role_arn, grant.session_name, int(grant.duration.total_seconds()), grant.policy,
                              grant.policy_arns)
        # Everything but the token was encoded once per scope.
        body = b"%s&WebIdentityToken=%s" % (scope, _form_value(token))
        status, answer = await self._call(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body))
        return parse_answer(status, answer, grant)

    @measured_sts("AssumeRoleWithSAML")
    async def assume_role_with_saml(self, grant: RoleGrant, assertion: str) -> Credentials:
        """`assertion` is the base64 samlp:Response; the session name comes from its RoleSessionName."""
        if grant.provider_arn is None:
            raise StsRefused(f"grant via saml for {grant.role_arn} without a provider", reason="saml_no_provider")
        params = [("RoleArn", grant.role_arn), ("PrincipalArn", grant.provider_arn),
                  ("DurationSeconds", str(int(grant.duration.total_seconds())))]
        body = (SAML_ACTION + _encoded(params, grant.policy, grant.policy_arns)).encode()
        body += b"&SAMLAssertion=%s" % _form_value(assertion)
        status, answer = await self._call(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body))
        return parse_answer(status, answer, grant)

    @measured_sts("AssumeRole")
    async def assume_role(self, grant: RoleGrant, caller: CallerKeys, *, source_identity: str | None) -> Credentials:
        """AssumeRole signed by `caller` (a hub session in a role chain, or the broker's own credentials)."""
        pairs = query_pairs("AssumeRole", assume_role_params(grant, source_identity))
        return await self._signed(pairs, grant, caller)

    @measured_sts("GetFederationToken")
    async def get_federation_token(self, grant: RoleGrant, caller: CallerKeys) -> Credentials:
        """GetFederationToken signed by the broker's own IAM user keys."""
        return await self._signed(query_pairs("GetFederationToken", federation_token_params(grant)), grant, caller)

    async def _signed(self, pairs: list[tuple[str, str]], grant: RoleGrant, caller: CallerKeys) -> Credentials:
        body = "&".join(f"{name}={quote(value, safe='')}" for name, value in pairs).encode()
        # Signed once: a retry resends the same bytes, well within SigV4's five minutes.
        signed = "".join(f"{name}: {value}\r\n" for name, value in
                         sigv4_headers(self._endpoint.url, self._region, body, caller)).encode()
        status, answer = await self._call(b"%s%sContent-Length: %d\r\n\r\n%s" % (self._head, signed, len(body), body))
        return parse_answer(status, answer, grant, caller)

    async def _call(self, body: bytes) -> tuple[int, bytes]:
        """Up to `sts_max_attempts` tries for a throttled or failing STS (5xx, unreachable), each after a random
        wait (full jitter); a refusal or a timeout is answered at once (a retried timeout would outlast the
        deadline). A stale keep-alive connection closed before the request left is retried once for free."""
        attempt, stale_retried = 1, False
        while True:
            try:
                status, answer = await self._attempt(body)
            except _Dropped:
                if stale_retried:
                    raise StsUnavailable("STS closed the connection twice", reason="sts_unreachable") from None
                stale_retried = True
                continue  # the request never reached STS
            except TimeoutError:
                raise StsUnavailable("STS timeout", reason="sts_timeout") from None
            except (OSError, ssl.SSLError) as exc:
                if attempt >= self._attempts:
                    raise StsUnavailable(f"STS unreachable: {type(exc).__name__}", reason="sts_unreachable") from None
            else:
                if attempt >= self._attempts or not _retryable(status, answer):
                    return status, answer
            await asyncio.sleep(random.uniform(0, self._backoff * 2 ** (attempt - 1)))  # noqa: S311 - jitter
            attempt += 1

    async def _attempt(self, body: bytes) -> tuple[int, bytes]:
        if not self._slots.locked():
            await self._slots.acquire()  # a slot is free: taken at once, no timer needed
        else:
            try:
                # Waiting for a free connection is bounded too: when every one is busy with a slow STS, the
                # request fails within the broker's deadline instead of queueing without end.
                async with asyncio.timeout(self._connect_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise StsUnavailable("every STS connection busy", reason="sts_busy") from None
        try:
            conn = await self._connection()
            try:
                async with asyncio.timeout(self._read_timeout):
                    result = await conn.exchange(body)
            except BaseException:
                conn.close()
                raise
            if conn.usable():
                conn.reused = True
                self._idle.append(conn)
            else:
                conn.close()
            return result
        finally:
            self._slots.release()

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the likeliest to be alive
            if conn.usable():
                return conn
            conn.close()
        context = tls_context() if self._endpoint.tls else None
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await asyncio.get_running_loop().create_connection(
                _Connection, self._endpoint.host, self._endpoint.port, ssl=context,
                server_hostname=self._endpoint.host if context else None)
        return conn


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's CA store, loaded once on first use: not at start-up (tens of milliseconds), and
    broker/warmup.py loads it in a thread once the app serves."""
    return ssl.create_default_context()


@functools.lru_cache(maxsize=4096)
def _scope_params(role_arn: str, session_name: str, seconds: int, policy: str | None,
                  policy_arns: tuple[str, ...]) -> bytes:
    """The call's parameters but the token, percent-encoded: the same for every call of one grant."""
    params = [("RoleArn", role_arn), ("RoleSessionName", session_name), ("DurationSeconds", str(seconds))]
    return (ACTION + _encoded(params, policy, policy_arns)).encode()


def _encoded(params: list[tuple[str, str]], policy: str | None, policy_arns: tuple[str, ...]) -> str:
    if policy is not None:
        params.append(("Policy", policy))
    params += [(f"PolicyArns.member.{i}.arn", arn) for i, arn in enumerate(policy_arns, start=1)]
    # Names are ours and plain; values are percent-encoded.
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in params)


# RFC 3986 unreserved characters: quote() leaves them as they are.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~"


def _form_value(value: str) -> bytes:
    """quote(value, safe="") as bytes. A JWT is all unreserved characters: that is checked with one
    translate (~1 us) instead of quote's own check (~5 us for a 1 KB token)."""
    raw = value.encode()
    return raw if not raw.translate(None, _UNRESERVED) else quote(raw, safe="").encode()


def _retryable(status: int, body: bytes) -> bool:
    if status in _RETRIED_STATUS:
        return True
    return status == 400 and any(b"<Code>%s</Code>" % code in body for code in _THROTTLED)


_local = threading.local()


def _parser() -> etree.XMLParser:
    """One hardened parser per thread (lxml parsers are not shared between threads)."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                 huge_tree=False, remove_comments=True, remove_pis=True)
    return parser


def _xml(body: bytes) -> etree._Element | None:
    # No DTD means no entities: the answer cannot expand or reach out.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError:
        return None
    return root if isinstance(root.tag, str) else None


def _text(root: etree._Element, path: str) -> str:
    node = root.find(path)
    return str(node.text or "") if node is not None else ""


def parse_answer(status: int, body: bytes, grant: RoleGrant, caller: CallerKeys | None = None) -> Credentials:
    root = _xml(body)
    if root is None:
        raise StsUnavailable(f"STS answered {status} without XML", reason="sts_bad_answer")
    if status != 200:
        code = _text(root, f".//{STS_NS}Error/{STS_NS}Code") or _text(root, ".//Error/Code") or "Unknown"
        message = _text(root, f".//{STS_NS}Error/{STS_NS}Message") or _text(root, ".//Error/Message")
        error: BrokerError = sts_error(code, message)
        if status >= 500 and not is_unavailable_code(code):
            error = StsUnavailable(f"STS {status} {code}: {message}", reason="sts_server_error")
        raise error
    found = list(root.iter(f"{STS_NS}Credentials"))
    if len(found) != 1:
        raise StsUnavailable(f"STS answer has {len(found)} Credentials elements", reason="sts_bad_answer")
    fields = {child.tag: child.text or "" for child in found[0]}  # its direct children only
    try:
        expiration = datetime.fromisoformat(fields.get(f"{STS_NS}Expiration", ""))
    except ValueError:
        raise StsUnavailable("STS answer has no valid Expiration", reason="sts_bad_answer") from None
    values = [fields.get(f"{STS_NS}{name}", "") for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")]
    if not all(values):
        raise StsUnavailable("STS answer lacks a credential field", reason="sts_bad_answer")
    return Credentials(
        access_key_id=values[0], secret_access_key=values[1], session_token=values[2],
        expiration=expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC),
        role_arn=grant.role_arn, assumed_role_arn=_assumed_role_arn(found[0]), via=grant.via,
        chained=caller is not None and caller.temporary and grant.via == "assume_role",
        caller_key_id=None if caller is None else caller.access_key_id,
    )


def _assumed_role_arn(credentials: etree._Element) -> str:
    """AssumedRoleUser/Arn (FederatedUser/Arn for GetFederationToken) beside Credentials in the same Result: no
    second walk of the whole answer, and no ElementPath (a path find costs twice this walk of the Result's
    children)."""
    result = credentials.getparent()
    if result is None:
        return ""
    for user in result.iterchildren(f"{STS_NS}AssumedRoleUser", f"{STS_NS}FederatedUser"):
        for arn in user.iterchildren(f"{STS_NS}Arn"):
            return str(arn.text or "")
    return ""
