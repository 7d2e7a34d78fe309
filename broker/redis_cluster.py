"""Redis Cluster (ElastiCache cluster mode, ElastiCache Serverless, MemoryDB) over the pipelining client.

A key lives in one of 16384 slots (CRC16 of the key, or of its first non-empty `{hash tag}`); each slot is
served by one primary. Commands go straight to the primary of their key's slot, pipelined on that node's
RedisPipe. The slot map comes from CLUSTER SLOTS (any node answers it) and is fixed up as the cluster says:

- MOVED slot host:port: the slot has a new owner. Map it there, resend there, refresh the whole map in the
  background (a resharding or failover seldom moves one slot alone).
- ASK slot host:port: the slot is being migrated and this key may already be on the target: send ASKING and
  the command there, once, without remapping the slot.
- TRYAGAIN (a multi-key command over a slot half migrated) and CLUSTERDOWN: resent after a short pause,
  within MAX_ATTEMPTS.

All of these replies mean the command did not run, so resending it is safe. A lost connection is different
(the command may have run: INCR and SET NX are not idempotent): it fails the command, as on one node, and
the map is refreshed so that the next command finds a promoted replica.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from broker.redis_pipe import Endpoint, PipeError, RedisPipe, ReplyFailure

SLOTS = 16384
MAX_ATTEMPTS = 6  # redirections and retries of one command: a slot moves once, a failover takes a few pauses
RETRY_PAUSE = 0.05  # seconds, doubled per TRYAGAIN/CLUSTERDOWN retry (0.05 .. 0.8: about 1.5 s in all)
REFRESH_GAP = 0.2  # seconds between two background refreshes of the map


# Refusals that say the command did not run here: it is sent again (elsewhere, or after a pause).
_REROUTED = frozenset({"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"})


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def key_slot(key: str) -> int:
    """The slot of a key as Redis computes it: CRC16-CCITT (XMODEM) of the hash tag when there is one."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:  # "{}" is no tag: the whole key is hashed
            key = key[start + 1:end]
    return binascii.crc_hqx(key.encode(), 0) % SLOTS


def slot_groups(keys: Sequence[str]) -> list[list[int]]:
    """Indexes of keys grouped by slot, in first-seen order: each group can go in one multi-key command."""
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key_slot(key), []).append(index)
    return list(groups.values())


Address = tuple[str, int]


def _address(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def parse_slots(reply: Iterable[Any], asked: Address) -> list[tuple[int, int, Address]]:
    """CLUSTER SLOTS as (first slot, last slot, primary). A primary shown without a host ('' or '?') is on
    the node that was asked (Redis says so for its own address when it does not know it)."""
    ranges = []
    for entry in reply:
        first, last, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0] if primary[0] not in ("", "?", None) else asked[0]
        ranges.append((first, last, (str(host), int(primary[1]))))
    return ranges


class ClusterPipe:
    """Routes each command by its key's slot to that slot's primary. `seeds`: where to ask for the map
    (the configuration endpoint of ElastiCache, or a few nodes); every node is reached with the seed's
    credentials and TLS settings."""

    def __init__(self, seeds: Sequence[Endpoint], *, timeout: float = 2.0, max_connections: int = 4) -> None:
        if not seeds:
            raise ValueError("a cluster needs at least one seed node")
        self._seeds = [(seed.host, seed.port) for seed in seeds]
        self._template = seeds[0]
        self._timeout = timeout
        self._max = max_connections
        self._slots: list[Address | None] = [None] * SLOTS
        self._nodes: dict[Address, RedisPipe] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._refreshed_at = -REFRESH_GAP
        self._closing: set[asyncio.Task[None]] = set()
        self._retired: list[RedisPipe] = []  # gone from the map, closed a timeout later

    def slot_groups(self, keys: Sequence[str]) -> list[list[int]]:
        return slot_groups(keys)

    def _node(self, address: Address) -> RedisPipe:
        pipe = self._nodes.get(address)
        if pipe is None:
            endpoint = dataclasses.replace(self._template, host=address[0], port=address[1])
            pipe = self._nodes[address] = RedisPipe(endpoint, timeout=self._timeout, max_connections=self._max)
        return pipe

    async def call(self, key: str | None, *args: str | int) -> Any:
        """Send one command to the primary of key's slot (any primary when key is None)."""
        slot = key_slot(key) if key is not None else None
        address = self._slots[slot] if slot is not None else None
        if address is None:
            return await self._routed(slot, args, None)
        try:  # the common case, kept short: the map is right
            return await self._node(address).call(*args)
        except ReplyFailure as exc:
            if exc.code not in _REROUTED:
                raise
            return await self._routed(slot, args, exc)
        except PipeError:
            self._refresh_soon()  # a failed node: its replica may be promoted by now
            raise

    async def call_many(self, commands: Sequence[tuple[str, tuple[str | int, ...]]]) -> list[Any]:
        """Several commands (key, args) sent at once, each to its slot's primary, without a task each: the
        replies in order, a PipeError in place of a reply for a command that failed (the others may have
        run). One redirected is followed alone (it did not run)."""
        futures: list[asyncio.Future[Any] | None] = []
        for key, args in commands:
            address = self._slots[key_slot(key)]
            try:
                futures.append(self._node(address).send_now(*args) if address is not None else None)
            except PipeError:
                futures.append(None)  # that node's connection is failing: the slow path says why
        replies = []
        try:
            for (key, args), future in zip(commands, futures, strict=True):
                try:
                    replies.append(await self._reply(key, args, future))
                except PipeError as exc:
                    replies.append(exc)
        except BaseException:  # cancelled
            for future in futures:
                if future is not None:  # consumed, so that no failure goes unretrieved
                    future.add_done_callback(_consume)
            raise
        return replies

    async def _reply(self, key: str, args: tuple[str | int, ...], future: asyncio.Future[Any] | None) -> Any:
        if future is None:
            return await self.call(key, *args)
        try:
            return await future
        except ReplyFailure as exc:
            if exc.code not in _REROUTED:
                raise
            return await self._routed(key_slot(key), args, exc)
        except PipeError:
            self._refresh_soon()
            raise

    async def _routed(self, slot: int | None, args: tuple[str | int, ...], failure: ReplyFailure | None) -> Any:
        """The command sent until a node runs it: redirections followed, retries paused, MAX_ATTEMPTS in all."""
        for attempt in range(MAX_ATTEMPTS):
            asking = await self._after(failure, attempt) if failure is not None else None
            address = asking or await self._owner(slot)
            pipe = self._node(address)
            try:
                return await (pipe.call_asking(*args) if asking else pipe.call(*args))
            except ReplyFailure as exc:
                if exc.code not in _REROUTED:
                    raise
                failure = exc
            except PipeError:
                self._refresh_soon()
                raise
        last = failure.code if failure is not None else "none"
        raise PipeError(f"cluster did not run the command in {MAX_ATTEMPTS} tries (last refusal: {last})")

    async def _after(self, failure: ReplyFailure, attempt: int) -> Address | None:
        """What a refusal says: ASK -> the node to ask once; MOVED -> the slot's new owner, remembered;
        TRYAGAIN / CLUSTERDOWN -> a pause (doubling) before the next try."""
        if failure.code in ("MOVED", "ASK") and failure.redirect:
            moved_slot, target = failure.redirect.split(" ", 1)
            if failure.code == "ASK":
                return _address(target)
            self._slots[int(moved_slot)] = _address(target)
            self._refresh_soon()
            return None
        if failure.code == "CLUSTERDOWN":
            self._refresh_soon()
        await asyncio.sleep(RETRY_PAUSE * 2 ** attempt)
        return None

    async def _owner(self, slot: int | None) -> Address:
        address = self._slots[slot] if slot is not None else next((a for a in self._slots if a), None)
        if address is None:  # no map yet (or the slot is not served): fetch it now, once
            await self.refresh()
            address = self._slots[slot] if slot is not None else next((a for a in self._slots if a), None)
            if address is None:
                raise PipeError("cluster serves no node for the slot")
        return address

    def _refresh_soon(self) -> None:
        loop = asyncio.get_running_loop()
        if self._refreshing is None and loop.time() - self._refreshed_at >= REFRESH_GAP:
            self._refreshing = loop.create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(PipeError):
            await self.refresh()
        self._refreshing = None

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers: known primaries first, then the seeds."""
        self._refreshed_at = asyncio.get_running_loop().time()
        candidates = list(dict.fromkeys([a for a in self._slots if a] + self._seeds))
        failure: PipeError = PipeError("no cluster node answered CLUSTER SLOTS")
        for address in candidates:
            try:
                reply = await self._node(address).call("CLUSTER", "SLOTS")
            except ReplyFailure as exc:
                not_cluster = exc.code == "ERR"  # "This instance has cluster support disabled"
                failure = PipeError("CLUSTER SLOTS refused: not a cluster (use redis:// or rediss://)") \
                    if not_cluster else exc
                continue
            except PipeError as exc:
                failure = exc
                continue
            self._apply(parse_slots(reply, address))
            return
        raise failure

    def _apply(self, ranges: list[tuple[int, int, Address]]) -> None:
        slots: list[Address | None] = [None] * SLOTS
        for first, last, address in ranges:
            slots[first:last + 1] = [address] * (last - first + 1)
        self._slots = slots
        live = set(slots) | set(self._seeds)
        for address in [a for a in self._nodes if a not in live]:  # a node gone from the map: closed later
            pipe = self._nodes.pop(address)
            self._retired.append(pipe)
            task = asyncio.get_running_loop().create_task(self._close_later(pipe))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close_later(self, pipe: RedisPipe) -> None:
        # Commands on their way to a demoted primary get MOVED and follow it; one timeout later none is left.
        await asyncio.sleep(self._timeout)
        self._retired.remove(pipe)
        await pipe.close()

    async def ping(self) -> None:
        """Every primary answers (one slot not served is a store that cannot serve)."""
        await self._owner(None)
        if any(a is None for a in self._slots):
            raise PipeError("cluster leaves slots unserved")
        await asyncio.gather(*(self._node(a).call("PING") for a in set(self._slots) if a))

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.wait([self._refreshing])
            self._refreshing = None
        for task in self._closing:
            task.cancel()
        if self._closing:
            await asyncio.wait(self._closing)
        nodes, self._nodes, self._retired = [*self._nodes.values(), *self._retired], {}, []
        for pipe in nodes:
            await pipe.close()
