"""Fixtures of the serving tests: temporary lakehouses written with pyiceberg and the real API served by uvicorn
on a free port in a background thread."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uvicorn
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import (
    GOLD_OHLCV_1H,
    SILVER_OHLCV_1M,
)
from serving.api.main import create_app

FIXED_START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIXED_BARS = 10  # BTCUSDT spot bars at FIXED_START + 0..9 minutes
RECENT_BARS = 30  # BTCUSDT spot bars in the 30 minutes before the fixture ran
GOLD_HOURS = 5  # BTCUSDT spot hourly bars from FIXED_START
BUILT_AT = datetime(2024, 5, 2, tzinfo=UTC)

GOLD_1M = "gold.fct_ohlcv_1m"
GOLD_DIM_SYMBOL = "gold.dim_symbol"
_BAR_TYPES = {
    **{name: pa.decimal128(28, 8) for name in ("open", "high", "low", "close", "vwap")},
    **{name: pa.decimal128(38, 8) for name in ("volume", "buy_volume", "sell_volume")},
    "quote_volume": pa.decimal128(38, 16), "taker_buy_quote_volume": pa.decimal128(38, 16),
    **{name: pa.int64() for name in ("trade_count", "first_agg_trade_id", "last_agg_trade_id", "agg_trade_count")},
    "minute_count": pa.int32(), "incomplete_minutes": pa.int32(), "complete": pa.bool_(),
}  # fmt: skip


def gold_bar_schema(time_column: str, *extra: pa.Field) -> pa.Schema:
    """The columns dbt's fct_ohlcv_* models write (docs/data_dictionary.md), for hand-planted Gold tables."""
    head = [pa.field("exchange", pa.string()), pa.field("market", pa.string()), pa.field("symbol", pa.string()),
            pa.field(time_column, pa.timestamp("us", tz="UTC"))]  # fmt: skip
    return pa.schema([*head, *(pa.field(n, t) for n, t in _BAR_TYPES.items()), *extra])


GOLD_1M_SCHEMA = gold_bar_schema("open_time", pa.field("completeness_status", pa.string()))
GOLD_1H_SCHEMA = gold_bar_schema("hour")
DIM_SYMBOL_SCHEMA = pa.schema([
    pa.field("symbol", pa.string()), pa.field("exchange", pa.string()), pa.field("market", pa.string()),
    pa.field("first_seen_minute", pa.timestamp("us", tz="UTC")), pa.field("last_seen_minute", pa.timestamp("us", tz="UTC")),
    pa.field("base_asset", pa.string()), pa.field("quote_asset", pa.string()), pa.field("coin_id", pa.string()),
])  # fmt: skip


@dataclass(frozen=True)
class ApiServer:
    base_url: str
    settings: Settings
    fixed_rows: tuple[dict[str, Any], ...] = ()  # BTCUSDT spot 1-minute bars from FIXED_START, as written
    gold_rows: tuple[dict[str, Any], ...] = ()  # BTCUSDT spot hourly bars from FIXED_START, as written
    recent_bars: int = 0  # BTCUSDT spot 1-minute bars in the last RECENT_BARS minutes


def lake_settings(state_dir: Path) -> Settings:
    """Settings of a temporary local lakehouse, passed explicitly (independent of CRYPTOLAKE_* variables)."""
    return Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None, catalog_name="lake")


def silver_bar(symbol: str, minute: datetime, i: int, market: str = "spot") -> dict[str, Any]:
    """A 1-minute bar with distinct full-scale decimals; bar 0 has zero sell volume, tiny buy volume."""
    base = Decimal("64000.12345678") + i
    return {
        "exchange": "binance",
        "market": market,
        "symbol": symbol,
        "minute": minute,
        "open": base,
        "high": base + Decimal("10.00000001"),
        "low": base - Decimal("9.99999999"),
        "close": base + Decimal("1.5"),
        "volume": Decimal("1.23456789") + i,
        "quote_volume": Decimal("79012.3456789012345678") + i,
        "trade_count": 100 + i,
        "vwap": base + Decimal("0.00000001"),
        "buy_volume": Decimal("0.00000001") if i == 0 else Decimal("0.5") + i,
        "sell_volume": Decimal("0E-8") if i == 0 else Decimal("0.73456789"),
        "first_agg_trade_id": 1000 * i,
        "last_agg_trade_id": 1000 * i + 99,
        "built_at": BUILT_AT,
    }


def append_rows(catalog: Catalog, identifier: str, rows: list[dict[str, Any]]) -> None:
    table = catalog.load_table(identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def gold_bar(silver: dict[str, Any], time_column: str) -> dict[str, Any]:
    bar = {k: v for k, v in silver.items() if k not in ("minute", "built_at")}
    return {**bar, time_column: silver["minute"], "minute_count": 1, "agg_trade_count": 100,
            "taker_buy_quote_volume": Decimal("1.5"), "incomplete_minutes": 0, "complete": True,
            "completeness_status": "complete"}  # fmt: skip


def create_and_append(catalog: Catalog, identifier: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
    table = catalog.create_table(identifier, schema=schema)
    table.append(pa.Table.from_pylist(rows, schema=schema))


def seed_gold_1m(catalog: Catalog, now: datetime) -> list[dict[str, Any]]:
    """gold.fct_ohlcv_1m and gold.dim_symbol written by hand: BTCUSDT spot 10 fixed + 30 recent bars (two
    commits, shuffled), ETHUSDT spot and BTCUSDT futures 10 fixed bars each."""
    fixed = [silver_bar("BTCUSDT", FIXED_START + timedelta(minutes=i), i) for i in range(FIXED_BARS)]
    recent_start = now.replace(second=0, microsecond=0) - timedelta(minutes=RECENT_BARS)
    recent = [silver_bar("BTCUSDT", recent_start + timedelta(minutes=i), i) for i in range(RECENT_BARS)]
    others = [
        *(silver_bar("ETHUSDT", FIXED_START + timedelta(minutes=i), i) for i in range(FIXED_BARS)),
        *(silver_bar("BTCUSDT", FIXED_START + timedelta(minutes=i), i, "usdm_futures") for i in range(FIXED_BARS)),
    ]
    first = [gold_bar(b, "open_time") for b in [*reversed(fixed[5:]), *recent[::2], *others]]
    create_and_append(catalog, GOLD_1M, GOLD_1M_SCHEMA, first)
    second = [gold_bar(b, "open_time") for b in fixed[:5] + recent[1::2]]
    catalog.load_table(GOLD_1M).append(pa.Table.from_pylist(second, schema=GOLD_1M_SCHEMA))
    symbols = [
        {"symbol": s, "exchange": "binance", "market": m, "first_seen_minute": FIXED_START,
         "last_seen_minute": now, "base_asset": s[:3], "quote_asset": "USDT", "coin_id": None}
        for s, m in (("BTCUSDT", "spot"), ("ETHUSDT", "spot"), ("BTCUSDT", "usdm_futures"))
    ]  # fmt: skip
    create_and_append(catalog, GOLD_DIM_SYMBOL, DIM_SYMBOL_SCHEMA, symbols)
    return fixed


def seed_gold(catalog: Catalog) -> list[dict[str, Any]]:
    rows = [gold_bar(silver_bar("BTCUSDT", FIXED_START + timedelta(hours=i), i), "hour") for i in range(GOLD_HOURS)]
    create_and_append(catalog, GOLD_OHLCV_1H, GOLD_1H_SCHEMA, list(reversed(rows)))
    return rows


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[[Settings], ApiServer]]:
    """Start ``create_app(settings)`` under uvicorn on a free port; every server stops at session end."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings) -> ApiServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"api-{port}")
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return ApiServer(f"http://127.0.0.1:{port}", settings)

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def make_settings() -> Callable[[Path], Settings]:
    return lake_settings


@pytest.fixture(scope="session")
def seeded_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """Gold written by hand: 1-minute bars of BTCUSDT (spot: 10 fixed + 30 recent; futures), ETHUSDT; 5 hourly
    bars of BTCUSDT in 2024; gold.dim_symbol."""
    settings = lake_settings(tmp_path_factory.mktemp("seeded") / "state")
    catalog = bootstrap_lakehouse(settings)
    fixed = seed_gold_1m(catalog, datetime.now(UTC))
    gold = seed_gold(catalog)
    server = serve(settings)
    return replace(server, fixed_rows=tuple(fixed), gold_rows=tuple(gold), recent_bars=RECENT_BARS)


@pytest.fixture(scope="session")
def empty_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """A bootstrapped lakehouse without rows (and without the Gold table)."""
    settings = lake_settings(tmp_path_factory.mktemp("empty") / "state")
    bootstrap_lakehouse(settings)
    return serve(settings)


@pytest.fixture(scope="session")
def bare_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """A catalog without namespaces or tables: the pipeline never ran."""
    settings = lake_settings(tmp_path_factory.mktemp("bare") / "state")
    get_catalog(settings)
    return serve(settings)


# --- A lakehouse built by the real pipeline: history planted in Bronze/Silver with pyiceberg, Gold by `dbt build` --

E8 = Decimal("1e-8")
PIPE_DAY = datetime(2024, 5, 1, tzinfo=UTC)  # BTCUSDT spot: every minute of the day but a few, no id hole
PIPE_HOLED_DAY = PIPE_DAY + timedelta(days=1)  # BTCUSDT spot: three hours with an aggregate-id hole
PIPE_HISTORY = (datetime(2024, 2, 20, tzinfo=UTC), PIPE_HOLED_DAY)  # CoinGecko + Fear & Greed days
PIPE_KLINES_FROM = {"BTCUSDT": datetime(2024, 3, 1, tzinfo=UTC), "ETHUSDT": datetime(2024, 4, 1, tzinfo=UTC)}
PIPE_INGESTED = datetime(2024, 5, 3, tzinfo=UTC)
PIPE_CHECKED_AT = datetime(2024, 5, 3, 1, 0, tzinfo=UTC)


@dataclass(frozen=True)
class PipelineData:
    """What was planted before ``dbt build`` (the tests recompute Gold's numbers from it)."""

    minutes: tuple[dict[str, Any], ...]  # silver.ohlcv_1m rows
    klines: tuple[dict[str, Any], ...]  # bronze.binance_klines 1d rows
    coingecko: tuple[dict[str, Any], ...]  # silver.daily_prices rows
    fear_greed: tuple[dict[str, Any], ...]  # silver.fear_greed rows
    checks: tuple[dict[str, Any], ...]  # quality.check_results rows
    holed_minute: datetime  # the first minute after the aggregate-id hole


def _days_between(first: datetime, last: datetime) -> list[datetime]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def pipeline_minute_bars(
    symbol: str, market: str, start: datetime, minutes: int, rng: Any, *, hole_at: int | None = None,
    agg_id: int = 10_000, raw_id: int = 50_000,
) -> list[dict[str, Any]]:  # fmt: skip
    """Silver 1-minute bars from ``start`` with consecutive aggregate and raw ids (3 aggregate ids skipped before
    minute ``hole_at``); about one minute in ten has no trades (no bar)."""
    bars, price = [], Decimal(rng.randint(20_000, 40_000))
    for i in range(minutes):
        if rng.random() < 0.1:
            continue
        if hole_at is not None and i >= hole_at:
            agg_id, raw_id, hole_at = agg_id + 3, raw_id + 6, None
        count = rng.randint(1, 4)
        prices = [price + Decimal(rng.randint(-5000, 5000)) * E8 for _ in range(count)]
        quantities = [Decimal(rng.randint(1, 10**8)) * E8 for _ in range(count)]
        buys = [rng.random() < 0.5 for _ in range(count)]
        volume, quote = sum(quantities), sum(p * q for p, q in zip(prices, quantities, strict=True))
        bars.append({
            "exchange": "binance", "market": market, "symbol": symbol, "minute": start + timedelta(minutes=i),
            "open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1], "volume": volume,
            "quote_volume": quote, "trade_count": 2 * count,
            "vwap": (quote / volume).quantize(E8, rounding="ROUND_HALF_UP"),
            "buy_volume": Decimal(sum(q for q, b in zip(quantities, buys, strict=True) if b)).quantize(E8),
            "sell_volume": Decimal(sum(q for q, b in zip(quantities, buys, strict=True) if not b)).quantize(E8),
            "first_agg_trade_id": agg_id, "last_agg_trade_id": agg_id + count - 1, "built_at": PIPE_INGESTED,
            "agg_trade_count": count,
            "taker_buy_quote_volume": Decimal(sum(p * q for p, q, b in zip(prices, quantities, buys, strict=True) if b)),
            "first_trade_id": raw_id, "last_trade_id": raw_id + 2 * count - 1,
        })  # fmt: skip
        agg_id, raw_id, price = agg_id + count, raw_id + 2 * count, prices[-1]
    return bars


def _kline_1d(symbol: str, day: datetime, rng: Any, price: Decimal, trades: int | None = None) -> dict[str, Any]:
    close = max(Decimal(1), price + Decimal(rng.randint(-100_000, 100_000)) * Decimal("0.01"))
    volume = Decimal(rng.randint(10**8, 10**12)) * E8
    quote = (volume * close).quantize(E8)
    return {
        "symbol": symbol, "market": "spot", "interval": "1d", "open_time": day,
        "close_time": day + timedelta(days=1) - timedelta(milliseconds=1), "open": price,
        "high": max(price, close) + Decimal(rng.randint(0, 50_000)) * Decimal("0.01"),
        "low": max(Decimal("0.5"), min(price, close) - Decimal(rng.randint(0, 50_000)) * Decimal("0.01")),
        "close": close, "volume": volume, "quote_volume": quote, "trades": trades or rng.randint(1000, 10**6),
        "taker_buy_base_volume": (volume / 2).quantize(E8), "taker_buy_quote_volume": (quote / 2).quantize(E8),
        "is_closed": True, "raw": "[]", "source_url": "test", "ingested_at": PIPE_INGESTED, "source": "archive",
    }  # fmt: skip


def check_result(name: str, asset: str, outcome: str, severity: str, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "check_name": name, "asset_key": asset, "partition_key": "2024-05-01", "outcome": outcome,
        "severity": severity, "blocking": severity == "ERROR", "check_type": "soda",
        "description": f"{name} on {asset}", "row_count": 1440, "failed_checks": None if outcome == "passed" else name,
        "metric_values": '{"rows": 1440}', "run_id": f"run-{minutes}", "checked_at":
        PIPE_CHECKED_AT + timedelta(minutes=minutes), **extra,
    }  # fmt: skip


def plant_pipeline_history(settings: Settings) -> PipelineData:
    """Plant Silver bars, Binance 1d klines, CoinGecko, Fear & Greed and check results (pyiceberg appends)."""
    import random

    from cryptolake.lakehouse.spark import prepare_spark_environment
    from cryptolake.tables import BRONZE_BINANCE_KLINES, QUALITY_CHECK_RESULTS, SILVER_DAILY_PRICES, SILVER_FEAR_GREED

    prepare_spark_environment(settings)  # bootstrap: namespaces, registered tables, catalog tables
    catalog = get_catalog(settings)
    rng = random.Random(12)
    spot = pipeline_minute_bars("BTCUSDT", "spot", PIPE_DAY, 1440, rng)
    holed = pipeline_minute_bars(
        "BTCUSDT", "spot", PIPE_HOLED_DAY, 180, rng, hole_at=90,
        agg_id=spot[-1]["last_agg_trade_id"] + 1, raw_id=spot[-1]["last_trade_id"] + 1,
    )  # fmt: skip
    eth = pipeline_minute_bars("ETHUSDT", "spot", PIPE_DAY, 120, rng, agg_id=7_000, raw_id=9_000)
    futures = pipeline_minute_bars("BTCUSDT", "usdm_futures", PIPE_DAY, 240, rng, agg_id=3_000, raw_id=5_000)
    minutes = spot + holed + eth + futures
    trades_of = {  # our days' trade counts: whole days whose count equals the kline's become the daily price
        (bar["symbol"], bar["minute"].date()): 0 for bar in minutes if bar["market"] == "spot"
    }
    for bar in minutes:
        if bar["market"] == "spot":
            trades_of[(bar["symbol"], bar["minute"].date())] += bar["trade_count"]
    klines = []
    for symbol, first in PIPE_KLINES_FROM.items():
        price = Decimal(rng.randint(2_000, 60_000))
        for day in _days_between(first, PIPE_HOLED_DAY):
            kline = _kline_1d(symbol, day, rng, price, trades_of.get((symbol, day.date())))
            klines.append(kline)
            price = kline["close"]
    klines = [k | {"trades": k["trades"] + 6} if k["open_time"] == PIPE_HOLED_DAY else k for k in klines]
    history = _days_between(*PIPE_HISTORY)
    coingecko = [
        {"coin_id": "bitcoin", "day": day.date(), "price_usd": Decimal(rng.randint(15_000_000, 18_000_000)) / 1000,
         "market_cap_usd": Decimal(rng.randint(10**11, 10**12)), "volume_usd": Decimal(10**9),
         "point_time": day + timedelta(days=1), "is_provisional": False, "updated_at": PIPE_INGESTED}
        for day in history
    ]  # fmt: skip
    labels = ((25, "Extreme Fear"), (45, "Fear"), (55, "Neutral"), (75, "Greed"), (101, "Extreme Greed"))
    fear_greed = []
    for day in history:
        value = rng.randint(0, 100)
        label = next(name for bound, name in labels if value < bound)
        fear_greed.append({"day": day.date(), "value": value, "classification": label, "updated_at": PIPE_INGESTED})
    checks = [
        check_result("soda_silver_ohlcv_1m", "silver/ohlcv_1m", "passed", "ERROR", 0),
        check_result("soda_gold_fct_ohlcv_1h", "gold/fct_ohlcv_1h", "failed", "ERROR", 5),
        check_result("row_count_anomaly_silver_trades", "silver/trades", "failed", "WARN", 10,
                     check_type="row_count_anomaly"),
        check_result("dbt_test_not_null_dim_coin", "gold/dim_coin", "passed", "WARN", 15, check_type="dbt",
                     partition_key=None),
        check_result("soda_gold_fct_ohlcv_1h", "gold/fct_ohlcv_1h", "passed", "ERROR", 20),
    ]  # fmt: skip
    for identifier, rows in (
        (SILVER_OHLCV_1M.identifier, minutes), (BRONZE_BINANCE_KLINES.identifier, klines),
        (SILVER_DAILY_PRICES.identifier, coingecko), (SILVER_FEAR_GREED.identifier, fear_greed),
        (QUALITY_CHECK_RESULTS.identifier, checks),
    ):  # fmt: skip
        append_rows(catalog, identifier, rows)
    holed_minute = next(
        b["minute"] for a, b in itertools.pairwise(holed) if b["first_agg_trade_id"] != a["last_agg_trade_id"] + 1
    )
    return PipelineData(tuple(minutes), tuple(klines), tuple(coingecko), tuple(fear_greed), tuple(checks), holed_minute)


def build_pipeline_lake(settings: Settings, work_dir: Path) -> PipelineData:
    """Plant the history, then build every Gold table with a real ``dbt build``."""
    from cryptolake_dagster_tests.dbt.test_dbt_project import _dbt_build

    planted = plant_pipeline_history(settings)
    _dbt_build(settings, work_dir)
    return planted


@dataclass(frozen=True)
class PipelineApi:
    server: ApiServer
    planted: PipelineData

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def pipeline_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> PipelineApi:
    """Gold built by a real ``dbt build`` from planted Silver bars, Binance klines, CoinGecko and Fear & Greed."""
    work = tmp_path_factory.mktemp("pipeline")
    settings = lake_settings(work / "state").model_copy(update={"spark_shuffle_partitions": 1})
    planted = build_pipeline_lake(settings, work)
    return PipelineApi(serve(settings), planted)
