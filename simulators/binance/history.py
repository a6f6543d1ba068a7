"""Trade history kept by the simulator (the exchange's record, served over REST) and kline aggregation."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .protocol import SPOT_DECIMALS, AggTrade, decimals_of, format_decimal


@dataclass
class _SymbolHistory:
    trades: list[AggTrade]
    ids: list[int]
    times: list[int]
    price_decimals: int = 0
    qty_decimals: int = 0


@dataclass(frozen=True)
class KlineBar:
    """OHLCV of one interval computed with exact Decimal arithmetic."""

    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    first_trade_id: int
    last_trade_id: int


def build_klines(trades: Iterable[AggTrade], interval_ms: int) -> list[KlineBar]:
    """Aggregate trades (ascending ``a``) into bars; only intervals that contain trades produce a bar.

    ``trades`` counts raw trades (``l - f + 1``), taker-buy columns sum trades where the buyer is the taker
    (``m`` false), quote volume is ``sum(p * q)``.
    """
    bars: list[KlineBar] = []
    cur: dict[str, Any] | None = None

    def flush() -> None:
        if cur is not None:
            bars.append(KlineBar(**cur))

    for t in trades:
        p, q = t.price_dec, t.qty_dec
        open_time = t.trade_time - t.trade_time % interval_ms
        if cur is None or cur["open_time"] != open_time:
            flush()
            cur = {
                "open_time": open_time,
                "close_time": open_time + interval_ms - 1,
                "open": p,
                "high": p,
                "low": p,
                "close": p,
                "volume": Decimal(0),
                "quote_volume": Decimal(0),
                "trades": 0,
                "taker_buy_volume": Decimal(0),
                "taker_buy_quote_volume": Decimal(0),
                "first_trade_id": t.first_id,
                "last_trade_id": t.last_id,
            }
        cur["high"] = max(cur["high"], p)
        cur["low"] = min(cur["low"], p)
        cur["close"] = p
        cur["volume"] += q
        cur["quote_volume"] += p * q
        cur["trades"] += t.raw_trade_count
        cur["last_trade_id"] = t.last_id
        if not t.buyer_is_maker:
            cur["taker_buy_volume"] += q
            cur["taker_buy_quote_volume"] += p * q
    flush()
    return bars


def kline_row(bar: KlineBar, market: str, price_decimals: int = 8, qty_decimals: int = 8) -> list[Any]:
    """The 12-column REST kline array. Spot prints every decimal with 8 places; futures use the symbol's
    price/quantity precision and 8 places for quote volumes."""
    if market == "usdm_futures":
        pd, qd, quote_d = price_decimals, qty_decimals, SPOT_DECIMALS
    else:
        pd = qd = quote_d = SPOT_DECIMALS
    return [
        bar.open_time,
        format_decimal(bar.open, pd),
        format_decimal(bar.high, pd),
        format_decimal(bar.low, pd),
        format_decimal(bar.close, pd),
        format_decimal(bar.volume, qd),
        bar.close_time,
        format_decimal(bar.quote_volume, quote_d),
        bar.trades,
        format_decimal(bar.taker_buy_volume, qd),
        format_decimal(bar.taker_buy_quote_volume, quote_d),
        "0",
    ]


class TradeHistory:
    """Per-symbol append-only trade record (ascending aggregate id), bounded to ``max_per_symbol`` trades."""

    def __init__(self, symbols: Sequence[str] = (), max_per_symbol: int = 1_000_000) -> None:
        self._by_symbol: dict[str, _SymbolHistory] = {}
        self.max_per_symbol = max_per_symbol
        self.total = 0
        for s in symbols:
            self.register(s)

    def register(self, symbol: str, price_decimals: int = 0, qty_decimals: int = 0) -> None:
        """Declare a known symbol (REST answers "Invalid symbol." for the others)."""
        h = self._by_symbol.setdefault(symbol.upper(), _SymbolHistory([], [], []))
        h.price_decimals = max(h.price_decimals, price_decimals)
        h.qty_decimals = max(h.qty_decimals, qty_decimals)

    def knows(self, symbol: str) -> bool:
        return symbol.upper() in self._by_symbol

    @property
    def symbols(self) -> list[str]:
        return list(self._by_symbol)

    def precision(self, symbol: str) -> tuple[int, int]:
        h = self._by_symbol[symbol.upper()]
        return h.price_decimals, h.qty_decimals

    def add(self, trade: AggTrade) -> None:
        h = self._by_symbol.get(trade.symbol)
        if h is None:
            self.register(trade.symbol)
            h = self._by_symbol[trade.symbol]
        if h.ids and trade.agg_id <= h.ids[-1]:
            raise ValueError(f"{trade.symbol}: aggregate id {trade.agg_id} not above {h.ids[-1]}")
        h.trades.append(trade)
        h.ids.append(trade.agg_id)
        h.times.append(max(trade.trade_time, h.times[-1]) if h.times else trade.trade_time)
        h.price_decimals = max(h.price_decimals, decimals_of(trade.price))
        h.qty_decimals = max(h.qty_decimals, decimals_of(trade.qty))
        self.total += 1
        if len(h.trades) > self.max_per_symbol * 1.1:
            cut = len(h.trades) - self.max_per_symbol
            del h.trades[:cut], h.ids[:cut], h.times[:cut]

    def trades(self, symbol: str) -> list[AggTrade]:
        """Copy of the symbol's history (empty for unknown symbols)."""
        h = self._by_symbol.get(symbol.upper())
        return list(h.trades) if h else []

    def count(self, symbol: str) -> int:
        h = self._by_symbol.get(symbol.upper())
        return len(h.trades) if h else 0

    def id_range(self, symbol: str) -> tuple[int, int] | None:
        h = self._by_symbol.get(symbol.upper())
        return (h.ids[0], h.ids[-1]) if h and h.ids else None

    def query(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[AggTrade]:
        """Binance ``aggTrades`` semantics: ``fromId`` and/or a time window ascending from the start;
        with neither, the most recent ``limit`` trades."""
        h = self._by_symbol.get(symbol.upper())
        if h is None or limit <= 0:
            return []
        lo, hi = 0, len(h.trades)
        if from_id is not None:
            lo = max(lo, bisect.bisect_left(h.ids, from_id))
        if start_time is not None:
            lo = max(lo, bisect.bisect_left(h.times, start_time))
        if end_time is not None:
            hi = min(hi, bisect.bisect_right(h.times, end_time))
        if from_id is None and start_time is None:
            lo = max(lo, hi - limit)
        return h.trades[lo:hi][:limit] if lo < hi else []

    def klines(
        self,
        symbol: str,
        interval_ms: int,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[KlineBar]:
        """Bars overlapping ``[start_time, end_time]``: the first ``limit`` from the start, or with no start
        the most recent ``limit``."""
        h = self._by_symbol.get(symbol.upper())
        if h is None or limit <= 0 or not h.trades:
            return []
        lo = 0 if start_time is None else bisect.bisect_left(h.times, start_time - start_time % interval_ms)
        hi = len(h.trades) if end_time is None else bisect.bisect_right(h.times, end_time)
        if start_time is not None:
            bars = build_klines(h.trades[lo:hi], interval_ms)
            bars = [b for b in bars if b.close_time >= start_time]
            return bars[:limit]
        # Walk back from the end until ``limit`` distinct buckets are covered.
        buckets = 0
        last_bucket: int | None = None
        i = hi
        while i > lo:
            bucket = h.times[i - 1] // interval_ms
            if bucket != last_bucket:
                if buckets == limit:
                    break
                buckets += 1
                last_bucket = bucket
            i -= 1
        return build_klines(h.trades[i:hi], interval_ms)
