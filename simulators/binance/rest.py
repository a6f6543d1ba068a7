"""Binance-compatible REST endpoints (aggTrades, klines) plus ``/health``, served from the trade history."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import protocol as p
from .history import TradeHistory, kline_row

#: Request weights (Binance spot values; futures are similar).
WEIGHT_AGGTRADES = 2
WEIGHT_KLINES = 2


@dataclass
class RestResult:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class WeightTracker:
    """Used request weight in the current UTC minute (Binance's ``X-MBX-USED-WEIGHT-1M``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minute = -1
        self.used = 0

    def add(self, weight: int) -> int:
        minute = int(self._clock() // 60)
        if minute != self._minute:
            self._minute, self.used = minute, 0
        self.used += weight
        return self.used

    def seconds_to_reset(self) -> int:
        return max(1, 60 - int(self._clock() % 60))


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values or values[-1] == "":
        return None
    value = values[-1]
    if not value.lstrip("-").isdigit() or len(value) > 20:
        raise _ParamError(p.err_illegal(name))
    return int(value)


class _ParamError(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["msg"])
        self.body = body


class RestApi:
    """Routes ``GET`` requests for one market. ``health`` supplies the ``/health`` payload."""

    def __init__(
        self,
        market: str,
        history: TradeHistory,
        health: Callable[[], dict[str, Any]],
        weight_limit: int | None = None,
        pause: Callable[[bool], None] | None = None,
    ) -> None:
        self.market = market
        self.history = history
        self.health = health
        self.pause = pause
        self.weight_limit = weight_limit
        self.weights = WeightTracker()
        self.requests = 0
        self.errors = 0
        self.rate_limited = 0

    def handles(self, route: str) -> bool:
        return route in (
            p.HEALTH_PATH, p.PAUSE_PATH, p.RESUME_PATH, p.AGGTRADES_PATH[self.market], p.KLINES_PATH[self.market]
        )  # fmt: skip

    def handle(self, path: str) -> RestResult:
        """Answer one request path (with query string)."""
        self.requests += 1
        parts = urlsplit(path)
        route = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        if route == p.HEALTH_PATH:
            return RestResult(200, self.health())
        if route in (p.PAUSE_PATH, p.RESUME_PATH) and self.pause is not None:
            self.pause(route == p.PAUSE_PATH)
            return RestResult(200, self.health())
        if route == p.AGGTRADES_PATH[self.market]:
            endpoint, weight = self._aggtrades, WEIGHT_AGGTRADES
        elif route == p.KLINES_PATH[self.market]:
            endpoint, weight = self._klines, WEIGHT_KLINES
        else:
            self.errors += 1
            return RestResult(404, p.ERR_NOT_FOUND)
        used = self.weights.add(weight)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if self.weight_limit is not None and used > self.weight_limit:
            self.rate_limited += 1
            headers["Retry-After"] = str(self.weights.seconds_to_reset())
            return RestResult(429, p.err_too_many_requests(self.weight_limit), headers)
        try:
            result = endpoint(query)
        except _ParamError as exc:
            self.errors += 1
            return RestResult(400, exc.body, headers)
        result.headers.update(headers)
        return result

    def _symbol(self, query: dict[str, list[str]]) -> str:
        symbol = (query.get("symbol") or [""])[-1].strip().upper()
        if not symbol:
            raise _ParamError(p.err_mandatory("symbol"))
        if not self.history.knows(symbol):
            raise _ParamError(p.ERR_INVALID_SYMBOL)
        return symbol

    @staticmethod
    def _limit(query: dict[str, list[str]], bounds: tuple[int, int]) -> int:
        default, maximum = bounds
        limit = _int_param(query, "limit")
        if limit is None:
            return default
        if not 1 <= limit <= maximum:
            raise _ParamError(p.err_invalid_limit())
        return limit

    def _aggtrades(self, query: dict[str, list[str]]) -> RestResult:
        symbol = self._symbol(query)
        limit = self._limit(query, p.AGGTRADES_LIMIT)
        trades = self.history.query(
            symbol,
            from_id=_int_param(query, "fromId"),
            start_time=_int_param(query, "startTime"),
            end_time=_int_param(query, "endTime"),
            limit=limit,
        )
        return RestResult(200, [p.rest_aggtrade(t, self.market) for t in trades])

    def _klines(self, query: dict[str, list[str]]) -> RestResult:
        symbol = self._symbol(query)
        interval = (query.get("interval") or [""])[-1]
        if not interval:
            raise _ParamError(p.err_mandatory("interval"))
        interval_ms = p.KLINE_INTERVALS_MS.get(interval)
        if interval_ms is None:
            raise _ParamError(p.ERR_INVALID_INTERVAL)
        limit = self._limit(query, p.KLINES_LIMIT[self.market])
        bars = self.history.klines(
            symbol,
            interval_ms,
            start_time=_int_param(query, "startTime"),
            end_time=_int_param(query, "endTime"),
            limit=limit,
        )
        price_d, qty_d = self.history.precision(symbol)
        return RestResult(200, [kline_row(b, self.market, price_d, qty_d) for b in bars])
