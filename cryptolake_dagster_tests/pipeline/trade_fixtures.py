"""Test-side trade generation and an independent OHLCV recomputation (plain Python Decimal, no project code)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path


@dataclass(frozen=True)
class RawTrade:
    symbol: str
    agg_id: int
    price: Decimal
    qty: Decimal
    buyer_is_maker: bool
    time: datetime

    @property
    def first_id(self) -> int:
        return self.agg_id * 2

    @property
    def last_id(self) -> int:
        return self.agg_id * 2 + 1

    def message(self) -> str:
        """The Binance spot combined-stream text for this trade."""
        ms = int(self.time.timestamp() * 1000)
        data = {
            "e": "aggTrade", "E": ms + 3, "s": self.symbol, "a": self.agg_id, "p": f"{self.price:.8f}",
            "q": f"{self.qty:.8f}", "f": self.first_id, "l": self.last_id, "T": ms,
            "m": self.buyer_is_maker, "M": True,
        }  # fmt: skip
        return json.dumps({"stream": f"{self.symbol.lower()}@aggTrade", "data": data}, separators=(",", ":"))


def generate_trades(symbols: list[str], per_symbol: int, start: datetime, span: timedelta, seed: int) -> list[RawTrade]:
    rng = random.Random(seed)
    trades = []
    for index, symbol in enumerate(symbols):
        price = Decimal(rng.randint(100, 70_000))
        times = sorted(start + span * rng.random() for _ in range(per_symbol))
        for offset, moment in enumerate(times):
            price = max(Decimal("0.01"), price + Decimal(rng.randint(-500, 500)) / 100)
            qty = Decimal(rng.randint(1, 5_000_000)) / Decimal(10**6)
            moment = moment.replace(microsecond=(moment.microsecond // 1000) * 1000)
            trades.append(RawTrade(symbol, 1_000 * (index + 1) + offset, price, qty, rng.random() < 0.5, moment))
    return sorted(trades, key=lambda t: t.time)


def write_recording(trades: list[RawTrade], path: Path) -> Path:
    """Write trades in the recorded-traffic NDJSON format of ../shared/samples."""
    with path.open("w") as out:
        for trade in trades:
            out.write(json.dumps({"received_at": trade.time.timestamp(), "raw": trade.message()}) + "\n")
    return path


def expected_bars(trades: list[RawTrade], bucket: timedelta) -> dict[tuple[str, datetime], dict[str, object]]:
    """OHLCV per (symbol, bucket start) — open/close by aggregate id, vwap rounded half-up to 8 decimals."""
    groups: dict[tuple[str, datetime], list[RawTrade]] = defaultdict(list)
    seconds = int(bucket.total_seconds())
    for trade in {(t.symbol, t.agg_id): t for t in trades}.values():  # duplicates collapse
        epoch = int(trade.time.timestamp())
        groups[(trade.symbol, datetime.fromtimestamp(epoch - epoch % seconds, UTC))].append(trade)
    bars = {}
    for key, members in groups.items():
        members.sort(key=lambda t: t.agg_id)
        volume = sum((t.qty for t in members), Decimal(0))
        quote = sum((t.price * t.qty for t in members), Decimal(0))
        bars[key] = {
            "open": members[0].price,
            "high": max(t.price for t in members),
            "low": min(t.price for t in members),
            "close": members[-1].price,
            "volume": volume,
            "quote_volume": quote,
            "trade_count": sum(t.last_id - t.first_id + 1 for t in members),  # raw trades, Binance's kline n
            "vwap": (quote / volume).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP),
            "buy_volume": sum((t.qty for t in members if not t.buyer_is_maker), Decimal(0)),
            "sell_volume": sum((t.qty for t in members if t.buyer_is_maker), Decimal(0)),
        }
    return bars
