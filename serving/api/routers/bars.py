"""``GET /api/v1/bars/{symbol}`` (Gold bars of every interval, with their completeness) and ``GET /api/v1/symbols``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final

import pyarrow as pa
from fastapi import APIRouter, Path, Query, Request, Response, status

from cryptolake.contract import Market
from cryptolake.tables import (
    GOLD_DIM_SYMBOL,
    GOLD_OHLCV_1D,
    GOLD_OHLCV_1H,
    GOLD_OHLCV_1M,
    GOLD_OHLCV_4H,
    GOLD_OHLCV_5M,
    GOLD_OHLCV_15M,
)
from serving.api.deps import LakeDep
from serving.api.encode import encode_rows_json, with_data
from serving.api.errors import DATA_ERRORS, ApiError
from serving.api.lake import Lake, View
from serving.api.params import AsOfQuery, EndQuery, StartQuery, parse_as_of, utc_range
from serving.api.responses import cached_json
from serving.api.schemas import BAR_COLUMNS, BarsPublic, Interval, SymbolsPublic, kinds

DEFAULT_WINDOW: Final = timedelta(hours=24)
DEFAULT_LIMIT: Final = 5_000
MAX_LIMIT: Final = 100_000
SYMBOL_PATTERN: Final = r"^[A-Za-z0-9_-]{1,40}$"
BAR_KINDS: Final = kinds(BAR_COLUMNS)


@dataclass(frozen=True)
class BarTable:
    """Where the bars of one interval live; ``by_day``: loaded one UTC day at a time (the large tables)."""

    identifier: str
    time_column: str
    length: timedelta
    by_day: bool


BAR_TABLES: Final[dict[str, BarTable]] = {
    "1m": BarTable(GOLD_OHLCV_1M, "open_time", timedelta(minutes=1), True),
    "5m": BarTable(GOLD_OHLCV_5M, "open_time", timedelta(minutes=5), True),
    "15m": BarTable(GOLD_OHLCV_15M, "open_time", timedelta(minutes=15), False),
    "1h": BarTable(GOLD_OHLCV_1H, "hour", timedelta(hours=1), False),
    "4h": BarTable(GOLD_OHLCV_4H, "open_time", timedelta(hours=4), False),
    "1d": BarTable(GOLD_OHLCV_1D, "open_time", timedelta(days=1), False),
}
BAR_KEYS: Final = ("symbol", "market")

router = APIRouter(tags=["bars"])

SymbolPath = Annotated[
    str, Path(pattern=SYMBOL_PATTERN, description="Exchange symbol, e.g. BTCUSDT (any case)", examples=["BTCUSDT"])
]


def known_symbol(lake: Lake, symbol: str, market: str) -> View:
    """404 unless gold.dim_symbol lists (symbol, market)."""
    view, keys = lake.keys(GOLD_DIM_SYMBOL, ("symbol", "market"))
    if (symbol, market) not in keys:
        if not view.exists:
            raise ApiError(status.HTTP_404_NOT_FOUND, f"unknown symbol {symbol}: {GOLD_DIM_SYMBOL} is not built yet "
                           "(run the pipeline first)")  # fmt: skip
        markets = sorted(m for s, m in keys if s == symbol)
        hint = f" (it trades on {', '.join(markets)})" if markets else ""
        raise ApiError(
            status.HTTP_404_NOT_FOUND, f"unknown symbol {symbol} in market {market}{hint}: see /api/v1/symbols"
        )
    return view


def served(*views: View) -> list[dict[str, object]]:
    return [
        {"table": v.identifier, "snapshot_id": v.snapshot_id,
         "committed_at": v.committed_at.isoformat().replace("+00:00", "Z") if v.committed_at else None}
        for v in views
    ]  # fmt: skip


def notice(*views: View) -> str | None:
    """Why an answer may be empty: a table not built yet, or one without rows yet."""
    missing = [v.identifier for v in views if not v.exists]
    if missing:
        return f"{', '.join(missing)} not built yet: run the pipeline (`cryptolake run`, or materialize in Dagster)"
    empty = [v.identifier for v in views if v.snapshot_id is None]
    if empty:
        return f"{', '.join(empty)} has no rows yet (or had none at as_of)"
    return None


def bar_rows(
    lake: Lake, spec: BarTable, symbol: str, market: str, start: datetime, end: datetime, limit: int,
    as_of: int | datetime | None, *, newest: bool = False,
) -> tuple[View, pa.Table]:  # fmt: skip
    view, table = lake.rows(
        spec.identifier, (symbol, market), keys=BAR_KEYS, time_column=spec.time_column, start=start, end=end,
        limit=limit, by_day=spec.by_day, as_of=as_of, newest=newest,
    )  # fmt: skip
    if table.num_rows and spec.time_column != "time":
        table = table.rename_columns(["time" if c == spec.time_column else c for c in table.column_names])
    return view, table


@router.get("/bars/{symbol}", response_model=BarsPublic, responses=DATA_ERRORS, summary="OHLCV bars of a symbol (Gold)")
async def get_bars(
    request: Request,
    symbol: SymbolPath,
    lake: LakeDep,
    interval: Annotated[Interval, Query(description="Bar length: 1m, 5m, 15m, 1h, 4h or 1d (gold.fct_ohlcv_*)")] = "1m",
    start: StartQuery = None,
    end: EndQuery = None,
    market: Annotated[Market, Query(description="spot or usdm_futures")] = "spot",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many bars (the oldest)")] = DEFAULT_LIMIT,
    as_of: AsOfQuery = None,
) -> Response:
    """Bars with bar start in [start, end), oldest first, each with its completeness (`complete`,
    `incomplete_minutes`). Prices and volumes are exact decimal strings. `served_from` names the snapshot read.
    Compressed (`Content-Encoding: gzip`) when the request accepts gzip."""
    start_utc, end_utc = utc_range(start, end, DEFAULT_WINDOW)
    point = parse_as_of(as_of)
    pinned = start is not None and end is not None and as_of is None  # the URL alone determines the answer
    return await lake.serve(lambda: bars_answer(request, lake, symbol.upper(), interval, market, start_utc, end_utc,
                                                limit, point, pinned))  # fmt: skip


def bars_answer(
    request: Request, lake: Lake, symbol: str, interval: str, market: str, start_utc: datetime, end_utc: datetime,
    limit: int, point: int | datetime | None, pinned: bool,
) -> Response:  # fmt: skip
    symbols = known_symbol(lake, symbol, market)
    spec = BAR_TABLES[interval]
    view = lake.view(spec.identifier, point)
    key = ("bars", symbol, market, interval, start_utc, end_utc, limit, view.identifier, view.snapshot_id)

    def build() -> bytes:
        data_view, table = bar_rows(lake, spec, symbol, market, start_utc, end_utc, limit, point)
        return with_data({
            "symbol": symbol, "interval": interval, "market": market,
            "start": start_utc.isoformat().replace("+00:00", "Z"), "end": end_utc.isoformat().replace("+00:00", "Z"),
            "count": table.num_rows, "served_from": served(data_view), "notice": notice(data_view),
        }, encode_rows_json(table, BAR_KINDS))  # fmt: skip

    return cached_json(request, lake, key, build, url_reads=(symbols, view) if pinned else None)


@router.get("/symbols", response_model=SymbolsPublic, responses=DATA_ERRORS, summary="Symbols with 1-minute bars")
def get_symbols(
    lake: LakeDep, market: Annotated[Market | None, Query(description="Only this market")] = None
) -> SymbolsPublic:
    """Distinct symbols of gold.dim_symbol that have bars (a first minute), sorted."""
    _, parts = lake.load(GOLD_DIM_SYMBOL, keys=("symbol", "market"))
    symbols = set()
    for (symbol, row_market), rows in parts.data.items():
        if (market is None or row_market == market) and rows.column("first_seen_minute").null_count < rows.num_rows:
            symbols.add(symbol)
    return SymbolsPublic(count=len(symbols), data=sorted(symbols))
