"""broker/seams/uvicorn.py's DrainingServer against stock uvicorn (the release pinned in WRITTEN_FOR,
tests/test_seam_pins.py): stock uvicorn begins its shutdown on the first SIGTERM; the seam first drains."""

from __future__ import annotations

import asyncio
import signal
import time

import uvicorn

from broker.seams.uvicorn import DrainingServer
from broker.web.draining import ShutdownGate


async def _app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def test_stock_uvicorn_shuts_down_at_the_first_signal() -> None:
    server = uvicorn.Server(uvicorn.Config(_app, timeout_graceful_shutdown=3))
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and server._captured_signals == [signal.SIGTERM]
    assert server.config.timeout_graceful_shutdown == 3


def test_the_first_signal_drains_and_the_shutdown_follows_the_drain() -> None:
    gate = ShutdownGate(_app)
    server = DrainingServer(uvicorn.Config(gate), 0.3, gate.start_draining)
    server.handle_exit(signal.SIGTERM, None)
    assert gate.draining and not server.should_exit
    assert server._captured_signals == [signal.SIGTERM]  # re-raised by uvicorn for a server started before
    assert asyncio.run(server.on_tick(1)) is False
    time.sleep(0.3)
    assert asyncio.run(server.on_tick(1)) is True and server.should_exit


def test_a_second_signal_ends_the_drain_at_once() -> None:
    gate = ShutdownGate(_app)
    server = DrainingServer(uvicorn.Config(gate), 60, gate.start_draining)
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not server.force_exit
