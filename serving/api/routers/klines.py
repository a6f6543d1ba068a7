"""Binance-compatible klines: ``GET /api/v3/klines`` (spot) and ``GET /fapi/v1/klines`` (USD-M futures), so tools
that read Binance's klines can read CryptoLake's Gold bars.

Each kline is Binance's array, in Binance's documented order: ``[open time (ms), open, high, low, close, volume,
close time (ms), quote asset volume, number of trades, taker buy base asset volume, taker buy quote asset volume,
ignore]`` with the decimals as strings. As on Binance: ``startTime``/``endTime`` are inclusive bounds on the open
time in epoch milliseconds; without ``startTime`` the newest ``limit`` klines (up to ``endTime``) are returned;
``limit`` defaults to 500, at most 1000.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Response

from cryptolake.contract import Market
from serving.api.deps import LakeDep
from serving.api.encode import column_values, dumps
from serving.api.errors import DATA_ERRORS, invalid_parameter
from serving.api.lake import EPOCH
from serving.api.routers.bars import BAR_TABLES, SYMBOL_PATTERN, bar_rows, known_symbol
from serving.api.schemas import Interval

MAX_TIME_MS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
FAR_END: Final = datetime(9999, 12, 31, tzinfo=UTC)  # exclusive end of "every kline"
FAR_END_MS: Final = int((FAR_END - EPOCH) / timedelta(milliseconds=1))
KLINE_SCHEMA: Final[dict[str, Any]] = {
    "type": "array",
    "description": "Klines, oldest first",
    "items": {
        "type": "array",
        "minItems": 12,
        "maxItems": 12,
        "description": "[open time ms, open, high, low, close, volume, close time ms, quote asset volume, number of "
        "trades, taker buy base asset volume, taker buy quote asset volume, ignore]",
        # positions 0, 6 and 8 are integers, the others decimal strings ("0" for ignore)
        "items": {"type": ["integer", "string"]},
    },
}  # fmt: skip
KLINE_RESPONSES: Final = {200: {"content": {"application/json": {"schema": KLINE_SCHEMA}}}, **DATA_ERRORS}
TimeMs = Annotated[int | None, Query(ge=0, le=MAX_TIME_MS, description="Inclusive bound on the open time, epoch ms")]

router = APIRouter(tags=["binance-compatible"])


def _klines(
    lake: Any, symbol: str, interval: str, market: str, start_ms: int | None, end_ms: int | None, limit: int
) -> bytes:
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise invalid_parameter("startTime", f"startTime ({start_ms}) must not be after endTime ({end_ms})")
    symbol = symbol.upper()
    known_symbol(lake, symbol, market)
    spec = BAR_TABLES[interval]
    start = EPOCH + timedelta(milliseconds=start_ms) if start_ms is not None else EPOCH
    end = EPOCH + timedelta(milliseconds=min(end_ms + 1, FAR_END_MS)) if end_ms is not None else FAR_END
    view = lake.view(spec.identifier)
    key = ("klines", symbol, market, interval, start_ms, end_ms, limit, view.snapshot_id)

    def build() -> bytes:
        _, table = bar_rows(lake, spec, symbol, market, start, end, limit, None, newest=start_ms is None)
        if table.num_rows == 0:
            return b"[]"
        length_ms = int(spec.length / timedelta(milliseconds=1))
        times = [int(t.timestamp() * 1000) if t else None for t in table.column("time").to_pylist()]
        values = {c: column_values(table, c, "decimal") for c in
                  ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "taker_buy_quote_volume")}  # fmt: skip
        trades = table.column("trade_count").to_pylist()
        rows = [
            [t, values["open"][i], values["high"][i], values["low"][i], values["close"][i], values["volume"][i],
             t + length_ms - 1, values["quote_volume"][i], trades[i], values["buy_volume"][i],
             values["taker_buy_quote_volume"][i] or "0", "0"]
            for i, t in enumerate(times)
        ]  # fmt: skip
        return dumps(rows)

    return lake.cached_response(key, build)


@router.get("/api/v3/klines", responses=KLINE_RESPONSES, summary="Spot klines in Binance's format")
async def spot_klines(
    lake: LakeDep,
    symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT", examples=["BTCUSDT"])],
    interval: Annotated[Interval, Query(description="1m, 5m, 15m, 1h, 4h or 1d")],
    startTime: TimeMs = None,
    endTime: TimeMs = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Default 500; max 1000")] = 500,
) -> Response:
    """Binance's `GET /api/v3/klines` over gold.fct_ohlcv_* (spot)."""
    body = await lake.serve(lambda: _klines(lake, symbol, interval, "spot", startTime, endTime, limit))
    return Response(body, media_type="application/json")


@router.get("/fapi/v1/klines", responses=KLINE_RESPONSES, summary="USD-M futures klines in Binance's format")
async def futures_klines(
    lake: LakeDep,
    symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN, description="e.g. BTCUSDT", examples=["BTCUSDT"])],
    interval: Annotated[Interval, Query(description="1m, 5m, 15m, 1h, 4h or 1d")],
    startTime: TimeMs = None,
    endTime: TimeMs = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Default 500; max 1000")] = 500,
) -> Response:
    """Binance's `GET /fapi/v1/klines` over gold.fct_ohlcv_* (usdm_futures)."""
    market: Market = "usdm_futures"
    body = await lake.serve(lambda: _klines(lake, symbol, interval, market, startTime, endTime, limit))
    return Response(body, media_type="application/json")
