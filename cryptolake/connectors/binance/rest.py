"""Binance's REST ``aggTrades?fromId=`` endpoint, paged and weight-aware: how missing aggregate ids are fetched (the
producer's gap repair, the batch repair of a day's incomplete minutes)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

import requests

from cryptolake.connectors.binance.endpoints import AGG_TRADES_PATHS
from cryptolake.contract import Market
from cryptolake.logging import get_logger

log = get_logger(__name__)
PAGE_LIMIT: Final = 1000
REQUEST_WEIGHT: Final = {"spot": 4, "usdm_futures": 20}


class GapRepairError(RuntimeError):
    """The REST endpoint could not supply the missing trades."""


class GapRepairInterrupted(Exception):
    """The producer is stopping: a repair in progress was abandoned. Not a GapRepairError: the caller must not carry
    on as if the repair had failed (publishing the trade after the gap would move the checkpoint past it)."""


class AggTradesClient:
    """Pages through ``aggTrades`` from an id, spending at most ``weight_limit`` request weight per minute.

    :meth:`stop` (any thread) ends every wait — backoff, Retry-After, the weight-limit pause — at once, and the
    pending call raises :class:`GapRepairInterrupted`; a request in flight still runs to its ``timeout``.
    """

    def __init__(self, rest_base: str, market: Market, weight_limit: int, timeout: float = 10.0) -> None:
        self._url = rest_base.rstrip("/") + AGG_TRADES_PATHS[market]
        self._weight = REQUEST_WEIGHT[market]
        self._limit = weight_limit
        self._timeout = timeout
        self._session = requests.Session()
        self._window_start = time.monotonic()
        self._spent = 0
        self._stopping = threading.Event()
        self.requests = 0

    def stop(self) -> None:
        self._stopping.set()

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise GapRepairInterrupted as soon as :meth:`stop` is called."""
        if self._stopping.wait(max(seconds, 0.0)):
            raise GapRepairInterrupted("the producer is stopping")

    def trades(self, symbol: str, from_id: int, to_id: int | None) -> Iterator[dict[str, Any]]:
        """Yield REST aggTrade items with ids in [from_id, to_id] (to the newest if ``to_id`` is None), in order,
        each with ``s`` set."""
        next_id = from_id
        while to_id is None or next_id <= to_id:
            page = self._get(symbol, next_id)
            if not page:
                if to_id is None:
                    return
                raise GapRepairError(f"{symbol}: REST returned no trades from id {next_id} (wanted to {to_id})")
            advanced = False
            for item in page:
                if to_id is not None and item["a"] > to_id:
                    return
                if item["a"] >= next_id:
                    yield {**item, "s": symbol}
                    next_id = item["a"] + 1
                    advanced = True
            if not advanced:
                return

    def _get(self, symbol: str, from_id: int) -> list[dict[str, Any]]:
        for attempt in range(8):
            self._wait(0)  # stopping: no new request
            self._throttle()
            try:
                response = self._session.get(
                    self._url,
                    params={"symbol": symbol, "fromId": from_id, "limit": PAGE_LIMIT},
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                log.warning("aggTrades request failed", symbol=symbol, attempt=attempt, error=str(exc))
                self._wait(min(30.0, 0.5 * 2**attempt) * (0.5 + random.random()))
                continue
            self.requests += 1
            used = response.headers.get("X-MBX-USED-WEIGHT-1M")
            if used and used.isdigit():
                self._spent = max(self._spent, int(used))
            if response.status_code in (418, 429):
                wait = float(response.headers.get("Retry-After", 2**attempt))
                log.warning("aggTrades rate limited", status=response.status_code, retry_after_s=wait)
                self._wait(wait)
                continue
            if response.status_code >= 500:
                self._wait(min(30.0, 0.5 * 2**attempt))
                continue
            if response.status_code != 200:
                raise GapRepairError(f"{symbol}: aggTrades answered {response.status_code}: {response.text[:200]}")
            return response.json()
        raise GapRepairError(f"{symbol}: aggTrades from id {from_id} failed after 8 attempts")

    def _throttle(self) -> None:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._spent = now, 0
        if self._spent + self._weight > self._limit:
            pause = 60 - (now - self._window_start)
            log.info("gap repair pausing for rate limit", seconds=round(pause, 1))
            self._wait(pause)
            self._window_start, self._spent = time.monotonic(), 0
        self._spent += self._weight
