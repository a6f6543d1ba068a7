"""Blocking helper: run a :class:`SimulatorServer` on its own event loop in a daemon thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .protocol import AggTrade, rest_aggtrade
from .server import SimulatorConfig, SimulatorServer

T = TypeVar("T")


class SimulatorHandle:
    """A simulator running in a background thread. Thread-safe accessors; ``stop()`` is idempotent."""

    def __init__(self, server: SimulatorServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.server = server
        self._loop = loop
        self._thread = thread
        self._stop_event: asyncio.Event | None = None

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """WebSocket base URL, e.g. ``ws://127.0.0.1:PORT``."""
        return self.server.url

    @property
    def rest_url(self) -> str:
        """REST base URL, e.g. ``http://127.0.0.1:PORT``."""
        return self.server.rest_url

    def _call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        async def run() -> T:
            return fn()

        if not self._thread.is_alive():
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def emitted_count(self) -> int:
        """Trades generated so far (including those a fault kept off the WebSocket)."""
        return self.server.trades_emitted

    def trades(self, symbol: str) -> list[AggTrade]:
        return self._call(lambda: self.server.trades(symbol))

    def history(self, symbol: str) -> list[dict[str, Any]]:
        """The symbol's trade history in the REST ``aggTrades`` shape of the server's market."""
        market = self.server.config.market
        return [rest_aggtrade(t, market) for t in self.trades(symbol)]

    def health(self) -> dict[str, Any]:
        return self._call(self.server.health)

    def publish_raw(self, frames: Iterable[str | bytes], stream: str | None = None) -> int:
        """Send each frame verbatim (see :meth:`SimulatorServer.publish_raw`), in order; returns how many."""
        batch = list(frames)

        def publish() -> int:
            for frame in batch:
                self.server.publish_raw(frame, stream)
            return len(batch)

        return self._call(publish)

    def wait_for_emitted(self, count: int, timeout: float = 10.0) -> int:
        """Block until at least ``count`` trades were emitted (or the feed ended); returns the count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            emitted = self.server.trades_emitted
            if emitted >= count or self.server.feed_done:
                return emitted
            time.sleep(0.01)
        raise TimeoutError(f"only {self.server.trades_emitted} of {count} trades emitted after {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread.is_alive() and self._stop_event is not None:
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(timeout)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    config: SimulatorConfig | None = None, *, ready_timeout: float = 15.0, **overrides: Any
) -> SimulatorHandle:
    """Start a simulator in a daemon thread and return once it listens.

    ``run_in_thread(market="usdm_futures", rate=100, seed=1)`` or ``run_in_thread(SimulatorConfig(...))``.
    """
    server = SimulatorServer(config, **overrides)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    async def main() -> None:
        stop_event = asyncio.Event()
        holder["stop_event"] = stop_event
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            await stop_event.wait()
        finally:
            await server.stop()

    loop = asyncio.new_event_loop()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    thread = threading.Thread(target=target, name=f"simulator-{server.config.market}", daemon=True)
    thread.start()
    if not ready.wait(ready_timeout):
        raise TimeoutError("simulator did not start in time")
    if failure:
        thread.join(5)
        raise failure[0]
    handle = SimulatorHandle(server, loop, thread)
    handle._stop_event = holder["stop_event"]
    return handle
