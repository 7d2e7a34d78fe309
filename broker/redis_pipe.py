"""A small auto-pipelining Redis client (RESP2) on asyncio protocols and hiredis.

Every command is written to its connection at once and its reply future queued; replies arrive in the order
the commands were sent, so data_received resolves the queue front to back. There is no per-command pool
checkout, lock or task: redis-py's asyncio client spent 70-85 us of CPU per command on that machinery (more
than the rest of a token exchange); this one spends 5-7 us (python -m bench.store_redis, 200 callers).

Errors are PipeError, whose message is safe to show: it never holds a password, a key or a value.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

# A reply is buffered whole before hiredis hands it over; the store's values are small (< 64 KiB), so a reply
# far bigger than that is a broken or hostile server, not data. (hiredis' setmaxbuf only sizes the idle
# buffer it keeps; it does not refuse anything.)
MAX_REPLY_BYTES = 1 << 20
# Past this many unanswered commands on one connection Redis is not keeping up: refuse rather than queue
# without end.
MAX_IN_FLIGHT = 10_000
# A connection carries this many unanswered commands before another one is opened beside it (up to the
# cap). Pipelining keeps the depth near the number of concurrent callers only while Redis is slow to answer.
SPREAD_AT = 256

_NOT_YET = object()  # hiredis' "no complete reply buffered yet"
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_QUERY_NAMES = {"db", "username", "password", "ssl_cert_reqs", "ssl_ca_certs", "ssl_check_hostname", "ssl_certfile",
                "ssl_keyfile"}
# Error replies whose text after the code is an address, never data: kept for the cluster client to follow.
_REDIRECTS = {"MOVED", "ASK"}


def _pack(args: tuple[str | int, ...]) -> bytes:
    # hiredis' stub types its argument as a one-element tuple; any length is accepted.
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


class PipeError(Exception):
    """A command failed. The message names the cause only (never credentials, keys or values)."""


class ReplyFailure(PipeError):
    """Redis answered with an error reply; `code` is its first word (ERR, WRONGPASS, NOSCRIPT...)."""

    def __init__(self, code: str, redirect: str | None = None) -> None:
        # A redirection reaching a caller means a cluster was spoken to as one node.
        hint = " (a cluster node: use a redis+cluster:// or rediss+cluster:// URL)" if code in _REDIRECTS else ""
        super().__init__(f"error reply {code}{hint}")
        self.code = code
        self.redirect = redirect  # MOVED and ASK only: "SLOT HOST:PORT"


class ConnectFailure(PipeError):
    """No connection could be made: nothing was sent, so a caller may try elsewhere (a new primary)."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect, parsed from a redis://, rediss:// or unix:// URL as redis-py parses it."""

    host: str = "localhost"
    port: int = 6379
    path: str | None = None  # unix socket
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    server_name: str | None = None  # the TLS name to verify when it is not the host (an address from a cluster)

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _QUERY_NAMES)
        if unknown:  # only the names: a value may be a password
            raise ValueError(f"redis url: unsupported query parameters {unknown}")
        db = _db(query.get("db"), parts.path if parts.scheme != "unix" else "")
        # As in redis-py, the URL's user info wins over ?username= and ?password=.
        username = unquote(parts.username) if parts.username else query.get("username")
        password = unquote(parts.password) if parts.password else query.get("password")
        if parts.scheme == "unix":
            return cls(path=unquote(parts.path), db=db, username=username, password=password)
        if parts.scheme not in {"redis", "rediss"}:
            raise ValueError(f"redis url scheme {parts.scheme!r} is not one of redis, rediss, unix")
        tls = _tls_context(query) if parts.scheme == "rediss" else None
        return cls(host=unquote(parts.hostname or "localhost"), port=parts.port or 6379, db=db,
                   username=username, password=password, tls=tls)

    def handshake(self) -> list[tuple[str | int, ...]]:
        """The commands a new connection sends before any other."""
        commands: list[tuple[str | int, ...]] = []
        if self.password is not None and self.username:
            commands.append(("AUTH", self.username, self.password))
        elif self.password is not None:
            commands.append(("AUTH", self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        return commands


def _db(query_db: str | None, path: str) -> int:
    # redis-py reads the db from ?db= first, else from the path with every slash dropped ("/0/3" is 3).
    text = query_db if query_db is not None else unquote(path).replace("/", "")
    if not text:
        return 0
    try:
        return int(text)
    except ValueError:
        if query_db is not None:
            raise ValueError("redis url: db is not a number") from None
        return 0  # redis-py ignores a path that is not a number


def _tls_context(query: dict[str, str]) -> ssl.SSLContext:
    """Verified by default (system CAs, host name); ssl_cert_reqs / ssl_ca_certs / ssl_check_hostname as
    redis-py honours them in the URL."""
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in _CERT_REQS:
        raise ValueError("redis url: ssl_cert_reqs is not one of none, optional, required")
    check_hostname = query.get("ssl_check_hostname", "true").lower() not in {"0", "false", "no", "n", "off"}
    context.check_hostname = check_hostname and reqs != "none"
    context.verify_mode = _CERT_REQS[reqs]
    if query.get("ssl_certfile"):  # a client certificate, for servers that authenticate clients by TLS
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    return context


def _why(exc: OSError) -> str:
    if isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc):
        return "TLS handshake not answered"
    """The exception's type, and for TLS OpenSSL's reason code (WRONG_VERSION_NUMBER: a plain port spoken to
    with TLS; CERTIFICATE_VERIFY_FAILED...): codes, never data."""
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return f"{type(exc).__name__} {reason}" if isinstance(reason, str) and reason.isupper() else type(exc).__name__


class _Connection(asyncio.Protocol):
    """One socket. Replies are matched to commands by order alone, so nothing may ever skip the queue: a
    cancelled caller's future stays queued and its reply is read and dropped."""

    def __init__(self, timeout: float, on_close: Callable[[_Connection], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._on_close = on_close
        self._reader = hiredis.Reader(encoding="utf-8", notEnoughData=_NOT_YET)
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._gone: asyncio.Future[None] = self._loop.create_future()
        self.broken: str | None = None  # why no command may be sent any more

    @property
    def depth(self) -> int:
        return len(self._pending)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.broken is not None or self._transport is None:
            raise PipeError(self.broken or "not connected")
        if len(self._pending) >= MAX_IN_FLIGHT:
            raise PipeError("too many commands in flight")
        future: asyncio.Future[Any] = self._loop.create_future()
        deadline = self._loop.time() + self._timeout
        self._transport.write(packed)
        self._pending.append((future, deadline))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_deadline)
        return future

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
            reply = reader.gets()
            while reply is not _NOT_YET:
                self._resolve(reply)
                reply = reader.gets()
        except (hiredis.ProtocolError, UnicodeDecodeError, IndexError):  # IndexError: a reply nobody asked for
            self.fail("malformed reply")
            return
        if reader.len() > MAX_REPLY_BYTES:
            self.fail("reply too large")

    def _resolve(self, reply: Any) -> None:
        future = self._pending.popleft()[0]
        if future.done():  # its caller was cancelled: the reply is consumed, and dropped
            return
        if isinstance(reply, hiredis.ReplyError):
            code, _, rest = str(reply).partition(" ")
            future.set_exception(ReplyFailure(code, rest if code in _REDIRECTS else None))
        else:
            future.set_result(reply)

    def _check_deadline(self) -> None:
        # The queue is in send order, so its front has the earliest deadline: one timer per connection.
        self._timer = None
        if not self._pending:
            return
        deadline = self._pending[0][1]
        if deadline <= self._loop.time():
            self.fail("no reply within the timeout")  # later replies can no longer be matched
        else:
            self._timer = self._loop.call_at(deadline, self._check_deadline)

    def fail(self, reason: str) -> None:
        """Stop using this connection: fail every queued command and drop the socket."""
        if self.broken is None:
            self.broken = reason
            self._on_close(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, collections.deque()
        for future, _ in pending:
            if not future.done():
                future.set_exception(PipeError(reason))
        if self._transport is not None:
            self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("connection lost")
        if not self._gone.done():
            self._gone.set_result(None)

    async def close(self, wait: float) -> None:
        """Fail what is queued, drop the socket and wait (bounded) until it is gone."""
        self.fail("closed")  # abort, not close: nothing queued is wanted any more, and TLS need not linger
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._gone), wait)


class RedisPipe:
    """Auto-pipelining client: all callers share a few connections, commands queue on a socket rather than
    wait for a free one. One connection carries everything Redis can answer (Redis runs commands one at a
    time, whichever connection they come on); another is opened only when every open one has SPREAD_AT
    commands unanswered, up to max_connections.

    Failures: the connect and every reply are bounded by timeout. A command is never resent after it may
    have gone out (INCR and SET NX are not idempotent): a lost connection fails its queued commands, and
    the next command connects again, once.
    """

    def __init__(self, endpoint: Endpoint, *, timeout: float = 2.0, max_connections: int = 4) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._endpoint = endpoint
        self._timeout = timeout
        self._max = max_connections
        self._connections: list[_Connection] = []
        self._connecting: asyncio.Task[_Connection] | None = None
        self._grow_after = 0.0  # after a failed connect, wait a moment before opening more beside the live ones

    @property
    def connected(self) -> bool:
        """Some connection is open or opening (none are ever closed for being idle: none means all were lost)."""
        return bool(self._connections) or self._connecting is not None

    async def call(self, *args: str | int) -> Any:
        """Send one command and return its reply: str, int or None (nil). Raises PipeError."""
        connection = self._pick()
        if connection is None:
            connection = await self._connected()
        return await connection.send(_pack(args))

    def send_now(self, *args: str | int) -> asyncio.Future[Any] | None:
        """The reply's future, sent at once when a connection is open (None when none is yet): several commands
        go out together without a task each. Raises PipeError as call() does."""
        connection = self._pick()
        return None if connection is None else connection.send(_pack(args))

    async def call_asking(self, *args: str | int) -> Any:
        """ASKING, then the command, back to back on one connection (a cluster's ASK redirection)."""
        connection = self._pick() or await self._connected()
        asking = connection.send(_pack(("ASKING",)))
        reply = connection.send(_pack(args))
        return (await asyncio.gather(asking, reply))[1]  # gather retrieves the other's failure too

    def _pick(self) -> _Connection | None:
        connections = self._connections
        if not connections:
            return None
        best = connections[0]
        if best.depth < SPREAD_AT:  # the common case: the first connection is keeping up
            return best
        best = min(connections, key=lambda c: c.depth)
        if (best.depth >= SPREAD_AT and len(connections) < self._max and self._connecting is None
                and asyncio.get_running_loop().time() >= self._grow_after):
            self._start_connect()  # in the background: the open connections go on carrying commands
        return best

    async def _connected(self) -> _Connection:
        task = self._connecting or self._start_connect()
        try:
            # Shielded: one caller cancelled must not cancel the connect the others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise PipeError("closed while connecting") from None  # close() stopped it, not our caller
            raise

    def _start_connect(self) -> asyncio.Task[_Connection]:
        task = asyncio.get_running_loop().create_task(self._connect())
        self._connecting = task
        task.add_done_callback(self._connect_done)
        return task

    def _connect_done(self, task: asyncio.Task[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if task.cancelled():
            return
        if task.exception() is not None:  # retrieved here: a background connect may have no one awaiting it
            self._grow_after = asyncio.get_running_loop().time() + 1.0

    async def _connect(self) -> _Connection:
        try:  # one bound for connect, TLS and handshake together
            connection = await asyncio.wait_for(self._open(), self._timeout)
        except TimeoutError:
            raise ConnectFailure("connect timed out") from None
        except OSError as exc:  # refused, unreachable, TLS verification (ssl.SSLError is an OSError)
            raise ConnectFailure(f"connect failed: {_why(exc)}") from None
        if connection.broken is not None:  # lost between the handshake's reply and now
            raise PipeError(connection.broken)
        self._connections.append(connection)
        return connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        end = self._endpoint

        def protocol() -> _Connection:
            return _Connection(self._timeout, self._forget)

        if end.path is not None:
            _, connection = await loop.create_unix_connection(protocol, end.path)
        else:
            name = (end.server_name or end.host) if end.tls else None
            # A TLS handshake bound of its own, inside the connect's: a server that never answers one (a port
            # without TLS waits for a line) then says so instead of "timed out".
            _, connection = await loop.create_connection(
                protocol, end.host, end.port, ssl=end.tls, server_hostname=name,
                ssl_handshake_timeout=self._timeout * 0.75 if end.tls else None)
        try:
            for command in end.handshake():  # AUTH and SELECT before anything else goes out
                await connection.send(_pack(command))
        except BaseException:
            connection.fail("handshake failed")
            raise
        return connection

    def _forget(self, connection: _Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    async def close(self) -> None:
        """Close every connection; queued commands fail. A later command connects again."""
        connecting = self._connecting
        if connecting is not None:
            connecting.cancel()
            await asyncio.wait([connecting])  # its outcome is moot now, and wait() does not raise it
        connections, self._connections = self._connections, []
        for connection in connections:
            await connection.close(min(self._timeout, 1.0))
