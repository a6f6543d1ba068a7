"""Data quality: ``quality/checks`` (the history of check results) and ``quality/completeness/{symbol}``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Path, Query, Response

from cryptolake import tables
from cryptolake.contract import Market
from cryptolake.tables import GOLD_COMPLETENESS_DAILY, QUALITY
from cryptolake.utc import as_utc
from serving.api.deps import LakeDep
from serving.api.encode import dumps, encode_rows
from serving.api.errors import DATA_ERRORS, invalid_parameter
from serving.api.params import EndDayQuery, StartDayQuery, StrictTime, day_range
from serving.api.responses import JSON
from serving.api.routers.bars import SYMBOL_PATTERN, known_symbol, notice, served
from serving.api.routers.market import FIRST_DAY, LAST_DAY, _midnight
from serving.api.schemas import CHECK_COLUMNS, COMPLETENESS_COLUMNS, CheckResultsPublic, CompletenessPublic, kinds

_CHECK_RESULTS = getattr(tables, "QUALITY_CHECK_RESULTS", None)
CHECK_RESULTS: Final[str] = _CHECK_RESULTS.identifier if _CHECK_RESULTS is not None else f"{QUALITY}.check_results"

router = APIRouter(prefix="/quality", tags=["quality"])


@router.get("/checks", response_model=CheckResultsPublic, responses=DATA_ERRORS, summary="Check results history")
def checks(
    lake: LakeDep,
    asset: Annotated[
        str | None, Query(max_length=200, description="Only this asset key, e.g. gold/fct_ohlcv_1h")
    ] = None,
    outcome: Annotated[Literal["passed", "failed", "error"] | None, Query(description="Only this outcome")] = None,
    severity: Annotated[Literal["ERROR", "WARN"] | None, Query(description="Only this severity")] = None,
    check: Annotated[str | None, Query(max_length=200, description="Only this check name")] = None,
    start: Annotated[StrictTime | None, Query(description="checked_at at or after this time (ISO-8601)")] = None,
    end: Annotated[StrictTime | None, Query(description="checked_at before this time (ISO-8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many (the newest)")] = 100,
) -> Response:
    """Every recorded result of every asset check (Soda, dbt tests, anomaly checks), newest first."""
    try:
        start, end = (as_utc(start) if start else None), (as_utc(end) if end else None)
    except OverflowError as exc:
        raise invalid_parameter("start", "times must be within years 1..9999 in UTC", kind="range") from exc
    if start is not None and end is not None and start >= end:
        raise invalid_parameter("start", "start must be before end (the range is half-open)", kind="range")
    view = lake.view(CHECK_RESULTS)
    key = ("checks", asset, outcome, severity, check, start, end, limit, view.snapshot_id)

    def build() -> bytes:
        data_view, parts = lake.load(CHECK_RESULTS)
        table = parts.data.get((), pa.table({}))
        if table.num_rows:
            mask = pc.is_valid(table.column("checked_at"))
            for column, value in (("asset_key", asset), ("outcome", outcome), ("severity", severity),
                                  ("check_name", check)):  # fmt: skip
                if value is not None:
                    mask = pc.and_(mask, pc.equal(table.column(column), value))
            stamp = table.schema.field("checked_at").type
            if start is not None:
                mask = pc.and_(mask, pc.greater_equal(table.column("checked_at"), pa.scalar(start, stamp)))
            if end is not None:
                mask = pc.and_(mask, pc.less(table.column("checked_at"), pa.scalar(end, stamp)))
            table = table.filter(mask).sort_by([("checked_at", "descending"), ("check_name", "ascending")])
            table = table.slice(0, limit)
        data = encode_rows(table, kinds(CHECK_COLUMNS))
        message = notice(data_view)
        if message:
            message = f"no check results yet: {message}"
        return dumps({"count": len(data), "served_from": served(data_view), "notice": message, "data": data})

    return Response(lake.cached_response(key, build), media_type=JSON)


@router.get("/completeness/{symbol}", response_model=CompletenessPublic, responses=DATA_ERRORS,
            summary="Completeness per day of a symbol")  # fmt: skip
def completeness(
    symbol: Annotated[
        str, Path(pattern=SYMBOL_PATTERN, description="Exchange symbol, e.g. BTCUSDT", examples=["BTCUSDT"])
    ],
    lake: LakeDep,
    market: Annotated[Market, Query(description="spot or usdm_futures")] = "spot",
    start: StartDayQuery = None,
    end: EndDayQuery = None,
) -> Response:
    """gold.fct_completeness_daily of one symbol, oldest first: minutes complete, missing ids, kline mismatches."""
    first, last = day_range(start, end)
    symbol = symbol.upper()
    known_symbol(lake, symbol, market)
    view = lake.view(GOLD_COMPLETENESS_DAILY)
    key = ("completeness", symbol, market, first, last, view.snapshot_id)

    def build() -> bytes:
        data_view, table = lake.rows(
            GOLD_COMPLETENESS_DAILY, (symbol, market), keys=("symbol", "market"), time_column="day",
            start=_midnight(first or FIRST_DAY), end=_midnight(last or LAST_DAY) + timedelta(days=1), limit=10**9, by_day=False,
        )  # fmt: skip
        data = encode_rows(table, kinds(COMPLETENESS_COLUMNS))
        return dumps({"key": symbol, "market": market, "start": first.isoformat() if first else None,
                      "end": last.isoformat() if last else None, "count": len(data),
                      "served_from": served(data_view), "notice": notice(data_view), "data": data})  # fmt: skip

    return Response(lake.cached_response(key, build), media_type=JSON)
