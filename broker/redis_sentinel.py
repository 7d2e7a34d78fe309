"""Redis Sentinel: the primary of a service is asked of the sentinels, then checked with ROLE.

It is asked again when a connection to it cannot be made or is lost (a failover kills the clients of a demoted
primary) and when it answers READONLY (it is a replica now). A command that got READONLY or could not connect
did not run, so it is sent once more to the new primary; one lost mid-flight may have run and fails, as on a
single node.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from broker.redis_pipe import ConnectFailure, Endpoint, PipeError, RedisPipe, ReplyFailure

# Replies that say the node is no longer (or not yet) the primary: ask the sentinels again.
_NOT_PRIMARY = {"READONLY", "MASTERDOWN", "LOADING"}


class SentinelPipe:
    """`sentinels`: where to ask (with their own credentials, if any); `primary`: how to reach the primary
    once found (credentials, db, TLS), its host and port taken from the sentinels' answer."""

    def __init__(self, sentinels: Sequence[Endpoint], service: str, primary: Endpoint, *, timeout: float = 2.0,
                 max_connections: int = 4) -> None:
        if not sentinels:
            raise ValueError("sentinel mode needs at least one sentinel")
        self._sentinels = list(sentinels)
        self._service = service
        self._template = primary
        self._timeout = timeout
        self._max = max_connections
        self._primary: RedisPipe | None = None
        self._discovering: asyncio.Task[RedisPipe] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def slot_groups(self, keys: Sequence[str]) -> list[list[int]]:
        return [list(range(len(keys)))]

    async def call_many(self, commands: Sequence[tuple[str, tuple[str | int, ...]]]) -> list[Any]:
        return list(await asyncio.gather(*(self.call(key, *args) for key, args in commands), return_exceptions=True))

    async def call(self, key: str | None, *args: str | int) -> Any:
        pipe = self._primary
        if pipe is None or not pipe.connected:  # every connection lost: a failover kills a demoted primary's
            if pipe is not None:
                self._forget(pipe)
            pipe = await self._discover()
        try:
            return await pipe.call(*args)
        except ConnectFailure:
            pass  # nothing went out: the primary may have moved
        except ReplyFailure as exc:
            if exc.code not in _NOT_PRIMARY:
                raise
        except PipeError:
            self._forget(pipe)  # the command may have run: not resent, but the next one asks again
            raise
        self._forget(pipe)
        return await (await self._discover()).call(*args)

    def _forget(self, pipe: RedisPipe) -> None:
        if self._primary is pipe:
            self._primary = None
            task = asyncio.get_running_loop().create_task(pipe.close())  # not the caller's to wait for
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _discover(self) -> RedisPipe:
        # One discovery at a time, shared by every caller that needs it.
        if self._discovering is None:
            self._discovering = asyncio.get_running_loop().create_task(self._find_primary())
            self._discovering.add_done_callback(self._discovered)
        return await asyncio.shield(self._discovering)

    def _discovered(self, task: asyncio.Task[RedisPipe]) -> None:
        self._discovering = None
        if not task.cancelled() and task.exception() is None:
            self._primary = task.result()

    async def _find_primary(self) -> RedisPipe:
        failure = "no sentinel answered"
        for sentinel in self._sentinels:
            asker = RedisPipe(sentinel, timeout=self._timeout, max_connections=1)
            try:
                answer = await asker.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self._service)
            except PipeError as exc:
                failure = f"sentinel {sentinel.host}:{sentinel.port}: {exc}"
                continue
            finally:
                await asker.close()
            if not answer:
                failure = f"sentinels do not know the service {self._service!r}"
                continue
            found = await self._checked(str(answer[0]), int(answer[1]))
            if found is not None:
                return found
            failure = f"the primary named by sentinel {sentinel.host}:{sentinel.port} is not a primary"
        raise PipeError(f"no primary found: {failure}")

    async def _checked(self, host: str, port: int) -> RedisPipe | None:
        """The node's pipe when it says it is a primary (a sentinel can lag behind a failover)."""
        pipe = RedisPipe(dataclasses.replace(self._template, host=host, port=port), timeout=self._timeout,
                         max_connections=self._max)
        try:
            role = await pipe.call("ROLE")
        except PipeError:
            role = None
        if role and role[0] == "master":
            return pipe
        await pipe.close()
        return None

    async def ping(self) -> None:
        await self.call(None, "PING")

    async def close(self) -> None:
        if self._discovering is not None:
            self._discovering.cancel()
            await asyncio.wait([self._discovering])
        if self._closing:
            await asyncio.wait(self._closing)
        primary, self._primary = self._primary, None
        if primary is not None:
            await primary.close()
