"""Response models. Prices and volumes are exact decimals serialized as JSON strings (never floats); times are
ISO-8601 UTC (``Z``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, WithJsonSchema

from cryptolake.contract import Market
from cryptolake.utc import as_utc
from serving.api.lake import Interval


def _plain(value: Decimal) -> str:
    """Fixed-point text, never exponent notation: ``Decimal("0E-8")`` -> ``"0.00000000"``."""
    return format(value, "f")


ExactDecimal = Annotated[
    Decimal,
    PlainSerializer(_plain, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "decimal", "examples": ["64123.45000000"]}, mode="serialization"),
]
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class BarPublic(BaseModel):
    """One OHLCV bar. ``time`` is the bar start; ``buy_volume``/``sell_volume`` exist for 1-minute bars only."""

    time: UtcDatetime
    exchange: str
    market: str
    open: ExactDecimal
    high: ExactDecimal
    low: ExactDecimal
    close: ExactDecimal
    volume: ExactDecimal
    quote_volume: ExactDecimal
    trade_count: int = Field(description="Raw trades in the bar, as Binance's kline n counts them")
    vwap: ExactDecimal | None = None
    buy_volume: ExactDecimal | None = None
    sell_volume: ExactDecimal | None = None


class BarsPublic(BaseModel):
    """Bars of one symbol with bar start in the half-open range [start, end), oldest first."""

    symbol: str
    interval: Interval
    market: Market
    start: UtcDatetime
    end: UtcDatetime
    count: int = Field(description="Number of bars in data (at most the requested limit).")
    data: list[BarPublic]


class SymbolsPublic(BaseModel):
    """Distinct symbols that have 1-minute bars."""

    count: int
    data: list[str]


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"
    catalog: Literal["ok", "unavailable"]
    catalog_name: str
    detail: str | None = None
