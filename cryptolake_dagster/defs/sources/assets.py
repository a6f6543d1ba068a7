"""Bronze assets of the batch sources, one UTC day per partition, each run replacing its days in one commit.

* ``bronze/coingecko_market_chart``: per coin and day, ``market_chart/range`` for [day 00:00, next day 00:00];
  Spark ``overwrite(day in window)`` on the day-partitioned table.
* ``bronze/fear_greed``: the Fear & Greed values of the window's days; a MERGE on ``day`` (tiny unpartitioned
  table) that also deletes the window's days the source no longer returns.
* ``bronze/binance_klines``: spot / USD-M klines (``1d`` and ``1h`` by default) opening in the window, paged;
  Spark ``overwrite(open_time in window)``. Days before the resource's ``start_date`` are skipped.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dagster as dg

from cryptolake.lakehouse.writes import merge_window, overwrite_window, rows_frame
from cryptolake.tables import BRONZE_BINANCE_KLINES, BRONZE_COINGECKO_MARKET_CHART, BRONZE_FEAR_GREED, Table
from cryptolake.utc import as_utc, sql_date, sql_time_window, start_of_day
from cryptolake_dagster.asset_keys import table_key
from cryptolake_dagster.defs.sources.clients import days_in
from cryptolake_dagster.defs.sources.resources import BinanceKlinesResource, CoinGeckoResource, FearGreedResource
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource
from cryptolake_dagster.run_snapshots import run_snapshot_properties, snapshot_id
from cryptolake_dagster.table_assets import daily_table_asset_kwargs

BRONZE_COINGECKO_MARKET_CHART_KEY = table_key(BRONZE_COINGECKO_MARKET_CHART)
BRONZE_FEAR_GREED_KEY = table_key(BRONZE_FEAR_GREED)
BRONZE_BINANCE_KLINES_KEY = table_key(BRONZE_BINANCE_KLINES)

DAILY_SOURCE_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=49), warn_window=timedelta(hours=25)
)
SOURCE_KINDS = ("python", "spark", "iceberg")
SOURCE_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL)


def _source_asset(table: Table, source: str, **options: Any) -> Callable[..., dg.AssetsDefinition]:
    """``@dg.asset`` of a batch source's Bronze table: daily partitions, freshness, kinds and retries."""
    return dg.asset(
        **daily_table_asset_kwargs(
            table,
            "bronze",
            freshness=DAILY_SOURCE_FRESHNESS,
            kinds=SOURCE_KINDS,
            metadata={"source": source},
            **options,
        ),
        retry_policy=SOURCE_RETRY_POLICY,
    )


def _request_metadata(*clients: object) -> dict[str, dg.MetadataValue]:
    stats = [client.http.stats for client in clients]  # type: ignore[attr-defined]
    return {
        "http_requests": dg.MetadataValue.int(sum(s.requests for s in stats)),
        "http_retries": dg.MetadataValue.int(sum(s.retries for s in stats)),
        "http_rate_limited": dg.MetadataValue.int(sum(s.rate_limited for s in stats)),
        "http_waited_s": dg.MetadataValue.float(round(sum(s.waited_s for s in stats), 3)),
    }


@_source_asset(BRONZE_COINGECKO_MARKET_CHART, "CoinGecko market_chart/range")
def bronze_coingecko_market_chart(
    context: dg.AssetExecutionContext,
    coingecko: CoinGeckoResource,
    pyspark: LakehouseSparkResource,
    iceberg: IcebergCatalogResource,
) -> dg.MaterializeResult:
    """CoinGecko points of each coin for the partition's UTC day(s), replacing those days in one commit."""
    start, end = context.partition_time_window
    days = days_in(start, end)
    client = coingecko.client()
    rows = []
    lengths_mismatch = 0
    for day in days:
        for coin_id in coingecko.coin_ids:
            chart = client.day_chart(coin_id, day)
            lengths_mismatch += len(set(chart.array_lengths.values())) > 1
            for point in chart.points:
                rows.append(
                    {
                        "coin_id": coin_id,
                        "vs_currency": chart.vs_currency,
                        "day": day,
                        "point_time": point.point_time,
                        "price": point.price,
                        "market_cap": point.market_cap,
                        "total_volume": point.total_volume,
                        "is_intraday_last_point": point.is_intraday_last_point,
                        "raw": point.raw,
                        "source_url": chart.url,
                        "ingested_at": chart.fetched_at,
                    }
                )
    spark = pyspark.spark_session
    frame = rows_frame(spark, BRONZE_COINGECKO_MARKET_CHART, rows)
    condition = f"day >= {sql_date(days[0])} AND day <= {sql_date(days[-1])}"
    overwrite_window(
        spark, BRONZE_COINGECKO_MARKET_CHART, frame, condition, run_snapshot_properties(context.run.run_id)
    )
    context.log.info(f"replaced {len(days)} day(s) of {BRONZE_COINGECKO_MARKET_CHART.identifier}: {len(rows)} rows")
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(rows)),
            "coins": dg.MetadataValue.int(len(coingecko.coin_ids)),
            "days": dg.MetadataValue.int(len(days)),
            "intraday_points": dg.MetadataValue.int(sum(r["is_intraday_last_point"] for r in rows)),
            "points_without_price": dg.MetadataValue.int(sum(r["price"] is None for r in rows)),
            "points_without_market_cap": dg.MetadataValue.int(sum(r["market_cap"] is None for r in rows)),
            "points_without_volume": dg.MetadataValue.int(sum(r["total_volume"] is None for r in rows)),
            "charts_with_uneven_arrays": dg.MetadataValue.int(lengths_mismatch),
            **_request_metadata(client),
            "iceberg_snapshot_id": dg.MetadataValue.text(
                snapshot_id(iceberg.catalog(), BRONZE_COINGECKO_MARKET_CHART, context.run.run_id)
            ),
        }
    )


@_source_asset(BRONZE_FEAR_GREED, "Alternative.me /fng/", backfill_policy=dg.BackfillPolicy.single_run())
def bronze_fear_greed(
    context: dg.AssetExecutionContext,
    fear_greed: FearGreedResource,
    pyspark: LakehouseSparkResource,
    iceberg: IcebergCatalogResource,
) -> dg.MaterializeResult:
    """Fear & Greed values of the partition's UTC day(s) (one request, newest-first history back to the first day)."""
    start, end = context.partition_time_window
    days = days_in(start, end)
    client = fear_greed.client()
    history = client.days(days[0], days[-1])
    rows = [
        {
            "day": item.day,
            "value": item.value,
            "classification": item.classification,
            "timestamp": item.timestamp,
            "raw": item.raw,
            "source_url": history.url,
            "ingested_at": history.fetched_at,
        }
        for item in history.values
    ]
    spark = pyspark.spark_session
    frame = rows_frame(spark, BRONZE_FEAR_GREED, rows)
    window = f"t.day >= {sql_date(days[0])} AND t.day <= {sql_date(days[-1])}"
    merge_window(spark, BRONZE_FEAR_GREED, frame, ["day"], window, "bronze_fear_greed_batch")
    missing = sorted({d.isoformat() for d in days} - {r["day"].isoformat() for r in rows})
    if missing:
        context.log.warning(f"Fear & Greed has no value for {len(missing)} day(s): {missing[:10]}")
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(rows)),
            "days": dg.MetadataValue.int(len(days)),
            "days_without_value": dg.MetadataValue.int(len(missing)),
            **_request_metadata(client),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(iceberg.catalog(), BRONZE_FEAR_GREED)),
        }
    )


@_source_asset(BRONZE_BINANCE_KLINES, "Binance REST klines")
def bronze_binance_klines(
    context: dg.AssetExecutionContext,
    binance_klines: BinanceKlinesResource,
    pyspark: LakehouseSparkResource,
    iceberg: IcebergCatalogResource,
) -> dg.MaterializeResult:
    """Klines opening in the partition's UTC day(s) for every configured market, symbol and interval."""
    start, end = context.partition_time_window
    start, end = as_utc(start), as_utc(end)
    first_day = binance_klines.first_day()
    if first_day is not None:
        start = max(start, start_of_day(first_day))
    if start >= end:
        context.log.info(f"partition is before klines start_date {first_day}: nothing fetched, table untouched")
        return dg.MaterializeResult(metadata={"rows": dg.MetadataValue.int(0), "skipped": dg.MetadataValue.bool(True)})
    clients = []
    rows = []
    for market in binance_klines.markets:
        client = binance_klines.client(market)
        clients.append(client)
        for symbol in binance_klines.symbols:
            for interval in binance_klines.intervals:
                for page in client.pages(symbol, interval, start, end):
                    for kline in page.klines:
                        rows.append(
                            {
                                "symbol": symbol,
                                "market": market,
                                "interval": interval,
                                "open_time": kline.open_time,
                                "close_time": kline.close_time,
                                "open": kline.open,
                                "high": kline.high,
                                "low": kline.low,
                                "close": kline.close,
                                "volume": kline.volume,
                                "quote_volume": kline.quote_volume,
                                "trades": kline.trades,
                                "taker_buy_base_volume": kline.taker_buy_base_volume,
                                "taker_buy_quote_volume": kline.taker_buy_quote_volume,
                                "is_closed": kline.close_time < page.fetched_at,
                                "raw": kline.raw,
                                "source_url": page.url,
                                "ingested_at": page.fetched_at,
                                "source": "rest",
                            }
                        )
    spark = pyspark.spark_session
    frame = rows_frame(spark, BRONZE_BINANCE_KLINES, rows)
    # REST rows only: klines imported from the archives (source = 'archive') stay beside them
    # (whole-file predicates Iceberg can evaluate: REST files hold only REST rows, archive files only archive rows)
    condition = f"{sql_time_window('open_time', start, end)} AND (source IS NULL OR source = 'rest')"
    overwrite_window(spark, BRONZE_BINANCE_KLINES, frame, condition, run_snapshot_properties(context.run.run_id))
    per_interval = {
        interval: dg.MetadataValue.int(sum(r["interval"] == interval for r in rows))
        for interval in binance_klines.intervals
    }
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(rows)),
            **{f"rows_{interval}": value for interval, value in per_interval.items()},
            "open_bars": dg.MetadataValue.int(sum(not r["is_closed"] for r in rows)),
            **_request_metadata(*clients),
            "iceberg_snapshot_id": dg.MetadataValue.text(
                snapshot_id(iceberg.catalog(), BRONZE_BINANCE_KLINES, context.run.run_id)
            ),
        }
    )
