"""Binance's kline, the 12-column row of REST ``/api/v3/klines`` and of the public data archives, parsed exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptolake.payloads import SourcePayloadError, dumps_exact, exact_decimal, parse_int
from cryptolake.utc import from_epoch_ms

#: Binance decimals: prices and base volumes at most 8 places (DECIMAL(28|38, 8)), quote volumes 16 (DECIMAL(38, 16)).
KLINE_PRICE_SCALE = 8
KLINE_QUOTE_SCALE = 16


@dataclass(frozen=True)
class Kline:
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal
    raw: str
    open_time_ms: int
    close_time_ms: int


def parse_kline(row: Any) -> Kline:
    """One 12-column kline array: ``[open_ms, "o", "h", "l", "c", "v", close_ms, "qv", n, "tbv", "tbqv", "0"]``."""
    if not isinstance(row, list) or len(row) < 11:
        raise SourcePayloadError(f"kline: expected a 12-column array, got {row!r}")
    open_ms, close_ms = parse_int(row[0], "kline open time"), parse_int(row[6], "kline close time")
    price = KLINE_PRICE_SCALE
    return Kline(
        open_time=from_epoch_ms(open_ms),
        close_time=from_epoch_ms(close_ms),
        open=exact_decimal(row[1], price, "kline open"),
        high=exact_decimal(row[2], price, "kline high"),
        low=exact_decimal(row[3], price, "kline low"),
        close=exact_decimal(row[4], price, "kline close"),
        volume=exact_decimal(row[5], price, "kline volume"),
        quote_volume=exact_decimal(row[7], KLINE_QUOTE_SCALE, "kline quote volume"),
        trades=parse_int(row[8], "kline trades"),
        taker_buy_base_volume=exact_decimal(row[9], price, "kline taker buy base volume"),
        taker_buy_quote_volume=exact_decimal(row[10], KLINE_QUOTE_SCALE, "kline taker buy quote volume"),
        raw=dumps_exact(row),
        open_time_ms=open_ms,
        close_time_ms=close_ms,
    )
