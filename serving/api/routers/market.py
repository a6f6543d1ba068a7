"""Daily Gold facts: ``market/overview``, ``market/daily/{coin}``, ``history/{coin}``, ``futures/daily/{symbol}``,
``sentiment/fear-greed``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Path, Response, status

from cryptolake.tables import GOLD_DIM_COIN, GOLD_FUTURES_DAILY, GOLD_MARKET_DAILY, GOLD_PRICE_DAILY
from serving.api.deps import LakeDep
from serving.api.encode import dumps, encode_rows
from serving.api.errors import DATA_ERRORS, ApiError
from serving.api.lake import Lake
from serving.api.params import AsOfQuery, EndDayQuery, StartDayQuery, day_range, parse_as_of
from serving.api.responses import JSON
from serving.api.routers.bars import SYMBOL_PATTERN, known_symbol, notice, served
from serving.api.schemas import (
    FEAR_GREED_COLUMNS,
    FUTURES_DAILY_COLUMNS,
    MARKET_DAILY_COLUMNS,
    OVERVIEW_COLUMNS,
    PRICE_DAILY_COLUMNS,
    FearGreedPublic,
    FuturesDailyListPublic,
    HistoryPublic,
    MarketDailyListPublic,
    MarketOverviewPublic,
    kinds,
)

FIRST_DAY: Final = date(1970, 1, 1)
LAST_DAY: Final = date(9999, 12, 30)
CoinPath = Annotated[
    str, Path(pattern=r"^[a-z0-9-]{1,64}$", description="CoinGecko coin id, e.g. bitcoin", examples=["bitcoin"])
]

router = APIRouter(tags=["market"])


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def known_coin(lake: Lake, coin: str) -> None:
    view, keys = lake.keys(GOLD_DIM_COIN, ("coin_id",))
    if (coin,) not in keys:
        reason = f"{GOLD_DIM_COIN} is not built yet (run the pipeline first)" if not view.exists else (
            f"known coins: {', '.join(sorted(k[0] for k in keys))}"
        )  # fmt: skip
        raise ApiError(status.HTTP_404_NOT_FOUND, f"unknown coin {coin!r}: {reason}")


def daily_response(
    lake: Lake, identifier: str, key_columns: tuple[str, ...], key: tuple[Any, ...], columns: Any,
    start: date | None, end: date | None, as_of: str | None, extra: dict[str, Any],
) -> bytes:  # fmt: skip
    first, last = day_range(start, end)
    point = parse_as_of(as_of)
    view = lake.view(identifier, point)
    cache_key = ("daily", identifier, key, first, last, view.snapshot_id)

    def build() -> bytes:
        data_view, table = lake.rows(
            identifier, key, keys=key_columns, time_column="day", start=_midnight(first or FIRST_DAY),
            end=_midnight(last or LAST_DAY) + timedelta(days=1), limit=10**9, by_day=False, as_of=point,
        )  # fmt: skip
        data = encode_rows(table, kinds(columns))
        return dumps({
            **extra, "start": first.isoformat() if first else None, "end": last.isoformat() if last else None,
            "count": len(data), "served_from": served(data_view), "notice": notice(data_view), "data": data,
        })  # fmt: skip

    return lake.cached_response(cache_key, build)


@router.get("/market/daily/{coin}", response_model=MarketDailyListPublic, responses=DATA_ERRORS,
            summary="Daily market facts of a coin")  # fmt: skip
async def market_daily(
    coin: CoinPath, lake: LakeDep, start: StartDayQuery = None, end: EndDayQuery = None, as_of: AsOfQuery = None
) -> Response:
    """gold.fct_market_daily for one coin, oldest first: price, market cap, returns, moving averages, volatility,
    Fear & Greed and the MA signal."""

    def answer() -> bytes:
        known_coin(lake, coin)
        return daily_response(lake, GOLD_MARKET_DAILY, ("coin_id",), (coin,), MARKET_DAILY_COLUMNS, start, end,
                              as_of, {"key": coin})  # fmt: skip

    return Response(await lake.serve(answer), media_type=JSON)


@router.get("/history/{coin}", response_model=HistoryPublic, responses=DATA_ERRORS,
            summary="The unified daily price series of a coin")  # fmt: skip
async def history(
    coin: CoinPath, lake: LakeDep, start: StartDayQuery = None, end: EndDayQuery = None, as_of: AsOfQuery = None
) -> Response:
    """gold.fct_price_daily for one coin since its first history day, with the `source` of each day (our trades >
    Binance klines > CSV > CoinGecko)."""

    def answer() -> bytes:
        known_coin(lake, coin)
        return daily_response(lake, GOLD_PRICE_DAILY, ("coin_id",), (coin,), PRICE_DAILY_COLUMNS, start, end,
                              as_of, {"key": coin})  # fmt: skip

    return Response(await lake.serve(answer), media_type=JSON)


@router.get("/futures/daily/{symbol}", response_model=FuturesDailyListPublic, responses=DATA_ERRORS,
            summary="Daily statistics of a USD-M futures symbol")  # fmt: skip
async def futures_daily(
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN, description="Futures symbol, e.g. BTCUSDT", examples=["BTCUSDT"])],
    lake: LakeDep, start: StartDayQuery = None, end: EndDayQuery = None, as_of: AsOfQuery = None,
) -> Response:  # fmt: skip
    """gold.fct_futures_daily: OHLCV, taker imbalance and the spot-futures basis per day."""
    symbol = symbol.upper()

    def answer() -> bytes:
        known_symbol(lake, symbol, "usdm_futures")
        return daily_response(lake, GOLD_FUTURES_DAILY, ("symbol",), (symbol,), FUTURES_DAILY_COLUMNS, start, end,
                              as_of, {"key": symbol})  # fmt: skip

    return Response(await lake.serve(answer), media_type=JSON)


def _latest_per_coin(table: pa.Table) -> pa.Table:
    if table.num_rows == 0:
        return table
    ordered = table.sort_by([("coin_id", "ascending"), ("day", "descending")])
    coins = ordered.column("coin_id").to_pylist()
    keep = [i for i, coin in enumerate(coins) if i == 0 or coins[i - 1] != coin]
    return ordered.take(keep)


@router.get("/market/overview", response_model=MarketOverviewPublic, responses=DATA_ERRORS,
            summary="Latest market facts per coin and the current Fear & Greed")  # fmt: skip
def market_overview(lake: LakeDep) -> Response:
    """Per coin its latest day in gold.fct_market_daily (last price, 24 h change, volume, market cap, moving
    averages and the MA signal), and the newest Fear & Greed index."""
    market_view = lake.view(GOLD_MARKET_DAILY)
    coin_view = lake.view(GOLD_DIM_COIN)

    def build() -> bytes:
        view, parts = lake.load(GOLD_MARKET_DAILY)
        coins_view, coin_parts = lake.load(GOLD_DIM_COIN)
        table = parts.data.get((), pa.table({}))
        latest = _latest_per_coin(table) if table.num_rows else table
        base = {}
        if coin_parts.data:
            dim = coin_parts.data[()]
            base = dict(zip(dim.column("coin_id").to_pylist(), dim.column("base_asset").to_pylist(), strict=True))
        data = encode_rows(latest, kinds(OVERVIEW_COLUMNS))
        for row in data:
            row["base_asset"] = base.get(row["coin_id"])
        fear_greed = None
        if table.num_rows:
            rated = table.filter(pc.is_valid(table.column("fear_greed_value")))
            if rated.num_rows:
                newest = rated.sort_by([("day", "descending")]).slice(0, 1)
                fear_greed = encode_rows(
                    newest.rename_columns([{"fear_greed_value": "value", "fear_greed_classification":
                                            "classification"}.get(c, c) for c in newest.column_names]),
                    kinds(FEAR_GREED_COLUMNS),
                )[0]  # fmt: skip
        return dumps({"count": len(data), "served_from": served(view, coins_view), "notice": notice(view, coins_view),
                      "fear_greed": fear_greed, "data": data})  # fmt: skip

    return Response(lake.cached_response(("overview", market_view.snapshot_id, coin_view.snapshot_id), build),
                    media_type=JSON)  # fmt: skip


@router.get("/sentiment/fear-greed", response_model=FearGreedPublic, responses=DATA_ERRORS,
            summary="The Fear & Greed index per day")  # fmt: skip
def fear_greed(lake: LakeDep, start: StartDayQuery = None, end: EndDayQuery = None,
               as_of: AsOfQuery = None) -> Response:  # fmt: skip
    """The index of each day in [start, end] that gold.fct_market_daily carries, oldest first."""
    first, last = day_range(start, end)
    point = parse_as_of(as_of)
    view = lake.view(GOLD_MARKET_DAILY, point)

    def build() -> bytes:
        data_view, parts = lake.load(GOLD_MARKET_DAILY, as_of=point)
        table = parts.data.get((), pa.table({}))
        data: list[dict[str, Any]] = []
        if table.num_rows:
            rated = table.filter(pc.is_valid(table.column("fear_greed_value")))
            if first is not None:
                rated = rated.filter(pc.greater_equal(rated.column("day"), pa.scalar(first, pa.date32())))
            if last is not None:
                rated = rated.filter(pc.less_equal(rated.column("day"), pa.scalar(last, pa.date32())))
            days = rated.group_by("day", use_threads=False).aggregate([
                ("fear_greed_value", "first"), ("fear_greed_classification", "first"), ("sentiment_score", "first"),
            ]).sort_by("day")  # fmt: skip
            days = days.rename_columns([{"fear_greed_value_first": "value",
                                         "fear_greed_classification_first": "classification",
                                         "sentiment_score_first": "sentiment_score"}.get(c, c)
                                        for c in days.column_names])  # fmt: skip
            data = encode_rows(days, kinds(FEAR_GREED_COLUMNS))
        return dumps({"start": first.isoformat() if first else None, "end": last.isoformat() if last else None,
                      "count": len(data), "served_from": served(data_view), "notice": notice(data_view),
                      "data": data})  # fmt: skip

    return Response(lake.cached_response(("fear_greed", first, last, view.snapshot_id), build), media_type=JSON)
