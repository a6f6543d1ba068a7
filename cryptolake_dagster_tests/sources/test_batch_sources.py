"""Batch sources end to end with real parts: real HTTP to local servers speaking the documented payload shapes
(``simulators.batch_apis`` for CoinGecko / Fear & Greed, the exchange simulator for Binance klines),
Dagster assets materialized per partition, Spark and Iceberg in the shared test lakehouse.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import dagster as dg
import pytest
import requests

from cryptolake.history.binance_archive import Archive, read_kline_archive, write_klines
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.tables import (
    BRONZE_BINANCE_KLINES,
    BRONZE_COINGECKO_MARKET_CHART,
    BRONZE_FEAR_GREED,
    SILVER_DAILY_PRICES,
    SILVER_FEAR_GREED,
    Table,
)
from cryptolake.utc import from_epoch_ms, to_epoch_ms
from cryptolake_dagster.defs.sources.assets import (
    bronze_binance_klines,
    bronze_coingecko_market_chart,
    bronze_fear_greed,
)
from cryptolake_dagster.defs.sources.clients import CoinGeckoClient, FearGreedClient, parse_kline
from cryptolake_dagster.defs.sources.http_client import JsonHttpClient, SourceHTTPError, parse_retry_after
from cryptolake_dagster.defs.sources.resources import BinanceKlinesResource, CoinGeckoResource, FearGreedResource
from cryptolake_dagster.defs.sources.silver import silver_daily_prices, silver_fear_greed
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource
from simulators.batch_apis import BatchSourcesHandle, fear_greed_class, run_in_thread
from simulators.binance import AggTrade, build_klines, kline_row
from simulators.binance import run_in_thread as run_exchange_simulator

DAY = date(2024, 3, 1)
COINS = ["bitcoin", "dogecoin"]
TWELVE = Decimal("1e-12")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _value(text: str) -> Decimal:
    return Decimal(text).quantize(TWELVE, rounding=ROUND_HALF_EVEN)


@pytest.fixture(scope="module")
def server() -> BatchSourcesHandle:
    with run_in_thread(seed=11) as handle:
        yield handle


@pytest.fixture
def sources(server: BatchSourcesHandle) -> BatchSourcesHandle:
    server.set_now(None)
    server.rate_limit_next(0)
    yield server
    server.set_now(None)
    server.rate_limit_next(0)


@pytest.fixture(scope="module")
def lake(settings, spark) -> dict[str, dg.ConfigurableResource]:
    return {
        "pyspark": LakehouseSparkResource.from_settings(settings, "cryptolake-tests"),
        "iceberg": IcebergCatalogResource.from_settings(settings),
    }


def _kline_zip(archive: Archive, rows: list[list]) -> bytes:
    """An archive file's bytes: one CSV of kline rows, as Binance zips them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(archive.name.replace(".zip", ".csv"), "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return buffer.getvalue()


def _contents(spark, table: Table, where: str | None = None, exclude: tuple[str, ...] = ()) -> list[tuple]:
    frame = spark.table(table.identifier)
    if where:
        frame = frame.where(where)
    columns = [c for c in frame.columns if c not in exclude]
    return [tuple(row) for row in frame.select(*columns).orderBy(*columns).collect()]


def _snapshots(settings, table: Table) -> list:
    return sorted(get_catalog(settings).load_table(table.identifier).snapshots(), key=lambda s: s.sequence_number)


def _metadata(result: dg.ExecuteInProcessResult, table: Table) -> dict:
    key = dg.AssetKey([table.namespace, table.name])
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return event.materialization.metadata


def _materialize(assets: list, partition: date, resources: dict) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, partition_key=partition.isoformat(), resources=resources)
    assert result.success
    return result


# --- payload shapes (HTTP only) -------------------------------------------------------------------------------


def test_coingecko_range_joins_uneven_arrays_with_exact_values(sources) -> None:
    client = CoinGeckoClient(JsonHttpClient(sources.coingecko_url))
    raw = requests.get(
        f"{sources.coingecko_url}/coins/dogecoin/market_chart/range",
        params={"vs_currency": "usd", "from": int(_midnight(DAY).timestamp()), "to": int(_midnight(DAY).timestamp())
                + 86_400},
        timeout=10,
    ).text  # fmt: skip
    payload = json.loads(raw, parse_float=Decimal)
    assert {len(payload[k]) for k in ("prices", "market_caps", "total_volumes")} == {24, 25}  # uneven arrays

    chart = client.day_chart("dogecoin", DAY)
    assert chart.array_lengths == {"prices": 25, "market_caps": 24, "total_volumes": 25}
    points = chart.points
    assert [p.point_time for p in points] == [_midnight(DAY) + timedelta(hours=h) for h in range(25)]
    assert points[0].market_cap is None and points[0].price is not None  # joined on timestamps, not positions
    assert not any(p.is_intraday_last_point for p in points)  # a past day has no "now" point
    for point, (ms, number) in zip(points, payload["prices"], strict=True):
        assert to_epoch_ms(point.point_time) == ms
        text = str(number)
        assert len(text.split(".")[1]) > 12  # dogecoin has more decimals than DECIMAL(38, 12) keeps
        assert point.price == _value(text)
        assert json.loads(point.raw, parse_float=Decimal)["prices"] == [ms, number]  # raw keeps the exact text


def test_coingecko_intraday_last_point(sources) -> None:
    today = datetime.now(UTC).date()
    now = _midnight(today) + timedelta(hours=15, seconds=7, milliseconds=123)
    sources.set_now(now)
    client = CoinGeckoClient(JsonHttpClient(sources.coingecko_url))

    chart = client.day_chart("bitcoin", today)
    assert chart.array_lengths == {"prices": 182, "market_caps": 181, "total_volumes": 181}  # 5-minute grid + now
    last = chart.points[-1]
    assert last.point_time == now and last.is_intraday_last_point
    assert last.total_volume is None and last.price == _value(
        sources.server.data.price_text("bitcoin", to_epoch_ms(now))
    )
    assert sum(p.is_intraday_last_point for p in chart.points) == 1

    daily = client.market_chart("bitcoin", 200)  # > 90 days: daily points at 00:00, then "now"
    assert daily.points[-1].point_time == now and daily.points[-1].is_intraday_last_point
    assert all(p.point_time.time() == datetime.min.time() for p in daily.points[:-1])


def test_fear_greed_strings_newest_first_one_per_day(sources) -> None:
    body = requests.get(f"{sources.fear_greed_url}/fng/", params={"limit": 10, "format": "json"}, timeout=10).json()
    rows = body["data"]
    assert body["metadata"] == {"error": None} and len(rows) == 10
    assert all(isinstance(r["value"], str) and isinstance(r["timestamp"], str) for r in rows)
    assert "time_until_update" in rows[0] and not any("time_until_update" in r for r in rows[1:])

    history = FearGreedClient(JsonHttpClient(sources.fear_greed_url)).history(10)
    days = [v.day for v in history.values]
    assert days == sorted(days, reverse=True) and len(set(days)) == 10  # newest first, one per UTC day
    for value, row in zip(history.values, rows, strict=True):
        assert value.value == int(row["value"]) and isinstance(value.value, int)
        assert value.classification == row["value_classification"] == fear_greed_class(value.value)
        assert value.timestamp == datetime.fromtimestamp(int(row["timestamp"]), UTC)

    window = FearGreedClient(JsonHttpClient(sources.fear_greed_url)).days(DAY, DAY + timedelta(days=2))
    assert [v.day for v in window.values] == [DAY + timedelta(days=2), DAY + timedelta(days=1), DAY]


def test_429_then_success_honours_retry_after_and_sends_demo_key(sources) -> None:
    waits: list[float] = []
    resource = CoinGeckoResource(base_url=sources.coingecko_url, api_key="demo-key", coin_ids=["bitcoin"])
    client = resource.client(sleep=waits.append)
    sources.rate_limit_next(2, retry_after_s=3)
    before = len(sources.requests)

    chart = client.day_chart("bitcoin", DAY)
    assert len(chart.points) == 25
    assert waits == [3.0, 3.0]  # Retry-After honoured, then success
    stats = client.http.stats
    assert (stats.requests, stats.retries, stats.rate_limited) == (3, 2, 2)
    assert all(headers.get("x-cg-demo-api-key") == "demo-key" for _, headers in sources.requests[before:])

    sources.rate_limit_next(10, retry_after_s=1)
    impatient = CoinGeckoResource(base_url=sources.coingecko_url, coin_ids=["bitcoin"], max_retries=2)
    with pytest.raises(SourceHTTPError) as failure:
        impatient.client(sleep=lambda _s: None).day_chart("bitcoin", DAY)
    assert failure.value.status == 429
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", datetime(2015, 10, 21, 7, 28, tzinfo=UTC)) == 10.0


# --- assets, Spark and Iceberg ----------------------------------------------------------------------------------


def test_coingecko_bronze_and_silver_partition_rerun_is_identical(settings, spark, sources, lake) -> None:
    resources = {**lake, "coingecko": CoinGeckoResource(base_url=sources.coingecko_url, coin_ids=COINS)}
    where = f"day = DATE '{DAY}'"
    first = _materialize([bronze_coingecko_market_chart, silver_daily_prices], DAY, resources)
    bronze_1 = _contents(spark, BRONZE_COINGECKO_MARKET_CHART, where, exclude=("ingested_at",))
    silver_1 = _contents(spark, SILVER_DAILY_PRICES)
    snapshots_1 = _snapshots(settings, BRONZE_COINGECKO_MARKET_CHART)

    second = _materialize([bronze_coingecko_market_chart, silver_daily_prices], DAY, resources)
    assert _contents(spark, BRONZE_COINGECKO_MARKET_CHART, where, exclude=("ingested_at",)) == bronze_1
    assert _contents(spark, SILVER_DAILY_PRICES) == silver_1  # updated_at included: nothing changed
    snapshots_2 = _snapshots(settings, BRONZE_COINGECKO_MARKET_CHART)
    assert len(snapshots_2) == len(snapshots_1) + 1  # one commit per run
    assert snapshots_2[-1].summary.operation.value == "overwrite"
    assert len(bronze_1) == 2 * 25

    metadata = _metadata(second, BRONZE_COINGECKO_MARKET_CHART)
    assert metadata["rows"].value == 50 and metadata["points_without_market_cap"].value == 2
    assert metadata["iceberg_snapshot_id"].value == str(snapshots_2[-1].snapshot_id)
    assert _metadata(first, SILVER_DAILY_PRICES)["rows"].value == 2

    # The rule: the last point at or before 00:00 UTC of the next day.
    close = _midnight(DAY + timedelta(days=1))
    data = sources.server.data
    rows = spark.table(SILVER_DAILY_PRICES.identifier).where(where).orderBy("coin_id").collect()
    assert [r.coin_id for r in rows] == sorted(COINS)
    for row in rows:
        ms = to_epoch_ms(close)
        assert row.point_time.replace(tzinfo=UTC) == close and not row.is_provisional
        assert row.price_usd == _value(data.price_text(row.coin_id, ms))
        assert row.market_cap_usd == _value(data.market_cap_text(row.coin_id, ms))
        assert row.volume_usd == _value(data.volume_text(row.coin_id, ms))


def test_intraday_point_is_provisional_then_replaced_by_the_close(settings, spark, sources, lake) -> None:
    today = datetime.now(UTC).date()
    now = _midnight(today) + timedelta(hours=15, seconds=7)
    resources = {**lake, "coingecko": CoinGeckoResource(base_url=sources.coingecko_url, coin_ids=["bitcoin"])}
    where = f"day = DATE '{today}'"

    sources.set_now(now)
    _materialize([bronze_coingecko_market_chart, silver_daily_prices], today, resources)
    (row,) = spark.table(SILVER_DAILY_PRICES.identifier).where(where).collect()
    assert row.is_provisional and row.point_time.replace(tzinfo=UTC) == now
    assert row.price_usd == _value(sources.server.data.price_text("bitcoin", to_epoch_ms(now)))
    assert row.volume_usd is None  # CoinGecko's total_volumes lacks the "now" point

    close = _midnight(today + timedelta(days=1))
    sources.set_now(close + timedelta(minutes=30))  # the day is over: its close exists now
    _materialize([bronze_coingecko_market_chart, silver_daily_prices], today, resources)
    (row,) = spark.table(SILVER_DAILY_PRICES.identifier).where(where).collect()
    assert not row.is_provisional and row.point_time.replace(tzinfo=UTC) == close
    assert row.price_usd == _value(sources.server.data.price_text("bitcoin", to_epoch_ms(close)))
    bronze = spark.table(BRONZE_COINGECKO_MARKET_CHART.identifier).where(where)
    assert bronze.where("is_intraday_last_point").count() == 0 and bronze.count() == 25


def test_fear_greed_bronze_and_silver_partition_rerun_is_identical(settings, spark, sources, lake) -> None:
    resources = {**lake, "fear_greed": FearGreedResource(base_url=sources.fear_greed_url)}
    assets = [bronze_fear_greed, silver_fear_greed]
    following = DAY + timedelta(days=1)
    _materialize(assets, DAY, resources)
    _materialize(assets, following, resources)
    bronze_1 = _contents(spark, BRONZE_FEAR_GREED, exclude=("ingested_at",))
    silver_1 = _contents(spark, SILVER_FEAR_GREED)
    _materialize(assets, DAY, resources)
    assert _contents(spark, BRONZE_FEAR_GREED, exclude=("ingested_at",)) == bronze_1
    assert _contents(spark, SILVER_FEAR_GREED) == silver_1

    rows = spark.table(SILVER_FEAR_GREED.identifier).orderBy("day").collect()
    assert [r.day for r in rows] == [DAY, following]
    for row in rows:
        value = sources.server.data.fear_greed(row.day)
        assert (row.value, row.classification) == (value, fear_greed_class(value))


def test_binance_klines_pages_back_and_rerun_is_identical(settings, spark, lake) -> None:
    symbols = ("BTCUSDT", "ETHUSDT")
    # The lakehouse is shared: other tests write klines (archives of other symbols and days), so read only ours.
    ours = f"symbol IN {symbols} AND to_date(open_time) = DATE'{DAY.isoformat()}'"
    trades: list[AggTrade] = []
    with run_exchange_simulator(symbols=symbols, max_trades=0, rate=1.0) as simulator:
        for index, symbol in enumerate(symbols):
            for i in range(30):  # one trade every 48 minutes: every hour of DAY gets a bar
                moment = to_epoch_ms(_midnight(DAY) + timedelta(minutes=5 + 48 * i))
                price = f"{(60_000 if index == 0 else 3_000) + 7 * i}.{i:02d}"
                trade = AggTrade(symbol, 100 + i, price, f"0.{i + 1:03d}", 500 + 2 * i, 501 + 2 * i, moment, moment,
                                 i % 3 == 0)  # fmt: skip
                simulator.server.publish_trade(trade)
                trades.append(trade)
        klines = BinanceKlinesResource(
            spot_base_url=simulator.rest_url, symbols=list(symbols), markets=["spot"], page_limit=5
        )
        resources = {**lake, "binance_klines": klines}
        result = _materialize([bronze_binance_klines], DAY, resources)
        first = _contents(spark, BRONZE_BINANCE_KLINES, ours, exclude=("ingested_at",))
        _materialize([bronze_binance_klines], DAY, resources)
        assert _contents(spark, BRONZE_BINANCE_KLINES, ours, exclude=("ingested_at",)) == first

        later_start = BinanceKlinesResource(
            spot_base_url=simulator.rest_url, symbols=list(symbols), markets=["spot"], start_date="2024-03-02"
        )
        later = resources | {"binance_klines": later_start}
        skipped = _materialize([bronze_binance_klines], DAY, later)
        assert _metadata(skipped, BRONZE_BINANCE_KLINES)["skipped"].value
        assert _contents(spark, BRONZE_BINANCE_KLINES, ours, exclude=("ingested_at",)) == first

        # Archive klines of the same day land beside the REST ones, and a REST re-run leaves them alone.
        archive = Archive("mirror/BTCUSDT-1d-2024-03.zip", "spot", "monthly", "BTCUSDT", "1d", "2024-03")
        archived = read_kline_archive(archive, _kline_zip(archive, [kline_row(bar, "spot") for bar in build_klines(
            [t for t in trades if t.symbol == "BTCUSDT"], 86_400_000)]), datetime.now(UTC))  # fmt: skip
        write_klines(get_catalog(settings), archive, archived)
        _materialize([bronze_binance_klines], DAY, resources)
        assert _contents(spark, BRONZE_BINANCE_KLINES, f"{ours} AND source = 'rest'", exclude=("ingested_at",)) == first
        got = spark.table(BRONZE_BINANCE_KLINES.identifier).where(f"{ours} AND source = 'archive'").collect()
        assert len(archived) == 1 and sorted(
            (r.symbol, r.interval, r.open_time.replace(tzinfo=UTC), r.close, r.trades) for r in got
        ) == [(a["symbol"], a["interval"], a["open_time"], a["close"], a["trades"]) for a in archived]

    metadata = _metadata(result, BRONZE_BINANCE_KLINES)
    assert (metadata["rows_1d"].value, metadata["rows_1h"].value) == (2, 48)
    assert metadata["http_requests"].value == 2 * (1 + 5)  # 24 hourly bars in pages of 5
    rows = spark.table(BRONZE_BINANCE_KLINES.identifier).where(f"{ours} AND source = 'rest'").collect()
    assert len(rows) == 2 * (1 + 24) and all(r.is_closed and r.market == "spot" for r in rows)
    by_key = {(r.symbol, r.interval, r.open_time.replace(tzinfo=UTC)): r for r in rows}
    for symbol in symbols:
        mine = [t for t in trades if t.symbol == symbol]
        for interval, ms in (("1d", 86_400_000), ("1h", 3_600_000)):
            for bar in build_klines(mine, ms):
                expected = parse_kline(kline_row(bar, "spot"))
                row = by_key[(symbol, interval, from_epoch_ms(bar.open_time))]
                assert row.close_time.replace(tzinfo=UTC) == expected.close_time
                assert (row.open, row.high, row.low, row.close) == (
                    expected.open, expected.high, expected.low, expected.close
                )  # fmt: skip
                assert (row.volume, row.quote_volume, row.trades) == (
                    expected.volume, expected.quote_volume, expected.trades
                )  # fmt: skip
                assert (row.taker_buy_base_volume, row.taker_buy_quote_volume) == (
                    expected.taker_buy_base_volume, expected.taker_buy_quote_volume
                )  # fmt: skip
                assert json.loads(row.raw) == kline_row(bar, "spot")
