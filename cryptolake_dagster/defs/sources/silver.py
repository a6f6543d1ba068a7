"""Silver assets of the batch sources (Spark MERGE), one UTC day per partition; a backfill runs as one MERGE.

**silver.daily_prices — the rule.** One row per coin and UTC day D. Among the Bronze points of D's window
(``bronze.coingecko_market_chart`` partition D, i.e. ``D 00:00 <= point_time <= D+1 00:00``) that carry a price,
the row takes the **last point at or before 00:00 UTC of the next day** (greatest ``point_time``; on a tie a final
point beats a provisional one). Its market cap and volume are the values at that same timestamp (null when
CoinGecko's shorter arrays have none there).

CoinGecko ends a series that reaches "now" with an intraday point. Bronze flags it (``is_intraday_last_point``)
only when D's window had not ended when fetched, so it can only ever count for the day that was *today* then:
Silver copies it with ``is_provisional = true``. When D's Bronze partition is fetched again after D+1 00:00 the
series contains the real point at (or just before) D+1 00:00, which then wins and replaces the provisional row. The
day's close therefore needs one Bronze run after midnight (e.g. run yesterday's partition early each day).

The MERGE only rewrites rows whose values changed (``updated_at`` moves only then), inserts new ones and deletes
rows of the window with no source row, so re-running a partition converges and an unchanged re-run changes
nothing.
"""

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING

import dagster as dg

from cryptolake.lakehouse.writes import merge_window
from cryptolake.tables import (
    BRONZE_COINGECKO_MARKET_CHART,
    BRONZE_FEAR_GREED,
    SILVER_DAILY_PRICES,
    SILVER_FEAR_GREED,
    Table,
)
from cryptolake.utc import sql_date
from cryptolake_dagster.asset_keys import table_key
from cryptolake_dagster.defs.sources.assets import BRONZE_COINGECKO_MARKET_CHART_KEY, BRONZE_FEAR_GREED_KEY
from cryptolake_dagster.defs.sources.clients import days_in
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource
from cryptolake_dagster.run_snapshots import snapshot_id
from cryptolake_dagster.table_assets import daily_table_asset_kwargs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SILVER_DAILY_PRICES_KEY = table_key(SILVER_DAILY_PRICES)
SILVER_FEAR_GREED_KEY = table_key(SILVER_FEAR_GREED)

DAILY_SILVER_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=50), warn_window=timedelta(hours=26)
)
DAILY_PRICE_VALUES = ("price_usd", "market_cap_usd", "volume_usd", "point_time", "is_provisional")
FEAR_GREED_VALUES = ("value", "classification")


def daily_prices_query(first: date, last: date) -> str:
    """One row per (coin_id, day) for days ``first..last`` following the module's documented rule."""
    return f"""
    SELECT coin_id, day, price_usd, market_cap_usd, volume_usd, point_time, is_provisional FROM (
        SELECT
            coin_id, day,
            price AS price_usd,
            market_cap AS market_cap_usd,
            total_volume AS volume_usd,
            point_time,
            is_intraday_last_point AS is_provisional,
            row_number() OVER (
                PARTITION BY coin_id, day
                ORDER BY point_time DESC, is_intraday_last_point ASC, ingested_at DESC
            ) AS rank
        FROM {BRONZE_COINGECKO_MARKET_CHART.identifier}
        WHERE day >= {sql_date(first)} AND day <= {sql_date(last)}
          AND vs_currency = 'usd'
          AND price IS NOT NULL
          AND point_time >= CAST(day AS TIMESTAMP)
          AND point_time <= CAST(date_add(day, 1) AS TIMESTAMP)
          AND (NOT is_intraday_last_point OR to_date(point_time) = day)
    ) WHERE rank = 1
    """


def fear_greed_query(first: date, last: date) -> str:
    return f"""
    SELECT day, value, classification FROM (
        SELECT day, value, classification,
               row_number() OVER (PARTITION BY day ORDER BY timestamp DESC, ingested_at DESC) AS rank
        FROM {BRONZE_FEAR_GREED.identifier}
        WHERE day >= {sql_date(first)} AND day <= {sql_date(last)}
    ) WHERE rank = 1
    """


def _silver_asset(table: Table, upstream: dg.AssetKey) -> Callable[..., dg.AssetsDefinition]:
    """``@dg.asset`` of a batch source's Silver table: daily partitions, one MERGE for a backfill."""
    return dg.asset(
        **daily_table_asset_kwargs(
            table, "silver", freshness=DAILY_SILVER_FRESHNESS, backfill_policy=dg.BackfillPolicy.single_run()
        ),
        deps=[upstream],
    )


def _merge_days(
    context: dg.AssetExecutionContext,
    pyspark: LakehouseSparkResource,
    table: Table,
    query: Callable[[date, date], str],
    keys: list[str],
    compare: tuple[str, ...],
) -> tuple["DataFrame", list[date]]:
    """MERGE ``query(first, last)`` over the partition's days into ``table`` (window ``day`` in those days); the
    batch is returned cached, for the caller's statistics (unpersist it after)."""
    start, end = context.partition_time_window
    days = days_in(start, end)
    spark = pyspark.spark_session
    batch = spark.sql(query(days[0], days[-1])).cache()
    window = f"t.day >= {sql_date(days[0])} AND t.day <= {sql_date(days[-1])}"
    merge_window(
        spark, table, batch, keys, window, f"{table.namespace}_{table.name}_batch", compare=compare, touch="updated_at"
    )
    return batch, days


@_silver_asset(SILVER_DAILY_PRICES, BRONZE_COINGECKO_MARKET_CHART_KEY)
def silver_daily_prices(
    context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """Daily coin prices for the partition's day(s) from Bronze CoinGecko points (MERGE: re-runs converge)."""
    batch, days = _merge_days(
        context, pyspark, SILVER_DAILY_PRICES, daily_prices_query, ["coin_id", "day"], DAILY_PRICE_VALUES
    )
    stats = batch.selectExpr(
        "count(*) AS rows", "count(DISTINCT coin_id) AS coins", "count_if(is_provisional) AS provisional"
    ).first()
    batch.unpersist()
    context.log.info(f"merged {stats['rows']} daily prices for {len(days)} day(s) from {days[0]}")
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(int(stats["rows"])),
            "coins": dg.MetadataValue.int(int(stats["coins"])),
            "provisional_rows": dg.MetadataValue.int(int(stats["provisional"])),
            "days": dg.MetadataValue.int(len(days)),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(iceberg.catalog(), SILVER_DAILY_PRICES)),
        }
    )


@_silver_asset(SILVER_FEAR_GREED, BRONZE_FEAR_GREED_KEY)
def silver_fear_greed(
    context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """The Fear & Greed value per UTC day of the partition's day(s) (MERGE: re-runs converge)."""
    batch, days = _merge_days(context, pyspark, SILVER_FEAR_GREED, fear_greed_query, ["day"], FEAR_GREED_VALUES)
    rows = batch.count()
    batch.unpersist()
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(rows),
            "days": dg.MetadataValue.int(len(days)),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(iceberg.catalog(), SILVER_FEAR_GREED)),
        }
    )
