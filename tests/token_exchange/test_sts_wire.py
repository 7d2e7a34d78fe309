"""The event-loop STS client on the wire: a raw TCP server on loopback answers with scripted bytes (chunked,
split, oversized, malformed, closed early, extra answers) and the client either reads the credentials or
refuses with the right reason, never hangs, and reuses a connection only when HTTP/1.1 says it may."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote

import pytest

from broker.devstack.servers import LOOPBACK
from broker.errors import StsRefused, StsUnavailable
from broker.grants import RoleGrant
from broker.issuers.sts_http import MAX_RESPONSE_BYTES, MAX_WIRE_BYTES, HttpStsClient, _form_value, parse_answer
from broker.settings import AwsConfig
from broker.web.errors import http_status

GRANT = RoleGrant(role_arn="arn:aws:iam::111122223333:role/R", via="web_identity", provider_arn=None,
                  session_name="alice", source_identity=None, duration=timedelta(hours=1))
XML = (b'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
       b"<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWIRE</AccessKeyId>"
       b"<SecretAccessKey>wire-secret</SecretAccessKey><SessionToken>wire-token</SessionToken>"
       b"<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser>"
       b"<Arn>arn:aws:sts::111122223333:assumed-role/R/alice</Arn></AssumedRoleUser>"
       b"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")
DENIED = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
          b"<Code>AccessDenied</Code><Message>Not authorized</Message></Error></ErrorResponse>")


def sized(body: bytes, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nContent-Type: text/xml\r\n" + extra + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class WireServer:
    """Reads each request (head + Content-Length body), then lets `reply` write whatever it wants;
    `reply` returns False to close the connection."""

    def __init__(self, reply: Reply) -> None:
        self.reply, self.connections, self.requests = reply, 0, 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        return f"http://{LOOPBACK}:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                self.requests += 1
                if not await self.reply(reader, writer, self.requests):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test ended
        finally:
            writer.close()


def client(url: str, read_timeout: float = 2.0) -> HttpStsClient:
    return HttpStsClient(AwsConfig(sts_endpoint_url=url, read_timeout=timedelta(seconds=read_timeout),
                                   connect_timeout=timedelta(seconds=1)), max_connections=4)


def writes(*pieces: bytes, keep: bool = True, pause: float = 0.0) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return keep
    return reply


async def call_with(reply: Reply, calls: int = 1, between: float = 0.0) -> tuple[list[object], WireServer]:
    server = WireServer(reply)
    async with server as url:
        sts = client(url)
        try:
            results: list[object] = []
            for n in range(calls):
                if n and between:
                    await asyncio.sleep(between)
                try:
                    results.append(await sts.assume_role_with_web_identity(GRANT, "t.o.k"))
                except (StsUnavailable, StsRefused) as exc:
                    results.append(exc)
            return results, server
        finally:
            await sts.close()


def run(coro: Awaitable[tuple[list[object], WireServer]]) -> tuple[list[object], WireServer]:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_chunked_and_byte_by_byte_answers_are_read_and_the_connection_reused() -> None:
    (first, second), server = run(call_with(writes(chunked(XML)), calls=2))
    assert getattr(first, "access_key_id", None) == "ASIAWIRE" and getattr(second, "session_token", "") == "wire-token"
    assert server.connections == 1
    one_byte_at_a_time = [bytes([b]) for b in sized(XML)]
    (creds,), _ = run(call_with(writes(*one_byte_at_a_time)))
    assert getattr(creds, "secret_access_key", None) == "wire-secret"


def test_error_answers_are_mapped_not_parsed_as_credentials() -> None:
    (refused,), _ = run(call_with(writes(sized(DENIED, b"403 Forbidden"))))
    assert isinstance(refused, StsRefused) and refused.reason == "sts_access_denied"


@pytest.mark.parametrize("answer, why", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: " + str(MAX_RESPONSE_BYTES + 1).encode() + b"\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + (b"ffff\r\n" + b"x" * 0xFFFF + b"\r\n") * 5,
     "too large"),
    (b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "unreadable"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 20000 + b"\r\n\r\n", "head"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n", "unreadable"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "unreadable"),
    (sized(XML) + sized(XML), "more than one answer"),
    (b"HTTP/1.1 200 OK\r\nX-Endless: " + b"v" * (MAX_WIRE_BYTES + 1), "answer too large"),
])
def test_malformed_or_oversized_answers_are_refused(answer: bytes, why: str) -> None:
    (result,), server = run(call_with(writes(answer)))
    assert isinstance(result, StsUnavailable) and result.reason == "sts_bad_answer", result
    assert why in str(result.detail) or why == "unreadable"
    assert server.requests == 1  # a broken answer is not retried: STS did answer


def test_answer_cut_short_is_retried_once_then_refused() -> None:
    (result,), server = run(call_with(writes(sized(XML)[:60], keep=False)))
    assert isinstance(result, StsUnavailable) and result.reason == "sts_unreachable"
    assert server.requests == 2 and server.connections == 2


def test_connection_close_and_http10_answers_are_not_reused() -> None:
    closing = sized(XML, extra=b"Connection: close\r\n")
    (a, b), server = run(call_with(writes(closing, keep=False), calls=2))
    assert getattr(a, "access_key_id", None) == getattr(b, "access_key_id", None) == "ASIAWIRE"
    assert server.connections == 2
    old = b"HTTP/1.0" + sized(XML)[8:]
    (c, d), server = run(call_with(writes(old, keep=False), calls=2))
    assert getattr(c, "access_key_id", None) == getattr(d, "access_key_id", None) == "ASIAWIRE"
    assert server.connections == 2


def test_server_closing_an_idle_keepalive_connection_costs_one_quiet_retry() -> None:
    async def close_after_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(sized(XML))  # says keep-alive, then hangs up once the client has it
        await writer.drain()
        await asyncio.sleep(0.05)
        return False

    (a, b), server = run(call_with(close_after_answer, calls=2, between=0.2))
    assert getattr(a, "access_key_id", None) == getattr(b, "access_key_id", None) == "ASIAWIRE"
    assert server.connections == 2 and server.requests == 2


def test_request_on_a_connection_the_server_just_dropped_is_sent_again() -> None:
    async def drop_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 2:
            return False  # read the request, hang up without a word (a keep-alive timeout racing it)
        writer.write(sized(XML))
        await writer.drain()
        return True

    (a, b), server = run(call_with(drop_the_second, calls=2))
    assert getattr(a, "access_key_id", None) == getattr(b, "access_key_id", None) == "ASIAWIRE"
    assert server.requests == 3 and server.connections == 2


def test_unasked_bytes_on_an_idle_connection_retire_it() -> None:
    async def answer_then_noise(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        writer.write(sized(XML))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(sized(XML))  # an answer nobody asked for: must never be taken as the next one
        await writer.drain()
        return True

    (a, b), server = run(call_with(answer_then_noise, calls=2, between=0.2))
    assert getattr(a, "access_key_id", None) == getattr(b, "access_key_id", None) == "ASIAWIRE"
    assert server.connections == 2


def test_silent_server_times_out_as_504() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        await asyncio.sleep(5)
        return False

    async def go() -> tuple[list[object], WireServer]:
        server = WireServer(never)
        async with server as url:
            sts = client(url, read_timeout=0.3)
            try:
                with pytest.raises(StsUnavailable) as late:
                    await sts.assume_role_with_web_identity(GRANT, "t.o.k")
                return [late.value], server
            finally:
                await sts.close()

    (late,), _ = run(go())
    assert isinstance(late, StsUnavailable) and late.reason == "sts_timeout" and http_status(late) == 504


@pytest.mark.parametrize("value", ["", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-_~", "a b", "a+b", "a/b=c&d",
                                   "%41", "é€", "\x00\n", "tok\r\nHost: evil", "a" * 5000 + "&"])
def test_the_token_is_percent_encoded_exactly_as_quote_does(value: str) -> None:
    # The fast path must never pass a byte quote() would encode: '&', '=', CR LF would split the form.
    assert _form_value(value) == quote(value, safe="").encode()


def test_the_assumed_role_arn_is_read_from_the_result_holding_the_credentials() -> None:
    arn = "arn:aws:sts::111122223333:assumed-role/R/alice"
    assert parse_answer(200, XML, GRANT).assumed_role_arn == arn
    # Real answers are indented and may order the Result's children otherwise.
    spaced = XML.replace(b"><", b">\n  <")
    assert parse_answer(200, spaced, GRANT).assumed_role_arn == arn
    first = XML.replace(b"<Credentials>", b"<AssumedRoleUser><Arn>" + arn.encode() + b"</Arn></AssumedRoleUser>"
                        b"<Credentials>", 1).replace(b"<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/R/"
                                                     b"alice</Arn></AssumedRoleUser></Assume", b"</Assume")
    assert first.count(b"<AssumedRoleUser>") == 1 and first.index(b"<AssumedRoleUser>") < first.index(b"<Credentials>")
    assert parse_answer(200, first, GRANT).assumed_role_arn == arn
    # An Arn outside AssumedRoleUser is not the assumed role's; no AssumedRoleUser at all reads as empty.
    none = XML.replace(b"<AssumedRoleUser>", b"<Other>").replace(b"</AssumedRoleUser>", b"</Other>")
    assert parse_answer(200, none, GRANT).assumed_role_arn == ""
