"""Silver assets built with Spark from Bronze, one UTC day per partition.

``silver/trades`` (+ ``silver/trades_quarantine``, same op) -> ``silver/ohlcv_1m``. How each table is written:

* ``silver.trades``: **overwrite by day** — one Iceberg ``overwrite`` commit replaces the day partition with the
  day's deduplicated, cleaned trades. A day is big (millions of rows) and always fully recomputed from Bronze, so
  writing it whole is cheaper than a MERGE (which would join the day with itself), and the content is a pure
  function of Bronze: an unchanged re-run writes identical rows (no build-time column).
* ``silver.trades_quarantine``: **MERGE** on the Bronze row key (kafka_topic, kafka_partition, kafka_offset): new
  rejects are inserted, changed ones updated, rows of the day no longer rejected deleted; ``quarantined_at`` only
  moves when a row's values or reason change, so an unchanged re-run leaves identical content. Skipped when the
  day has no rejects now and had none before.
* ``silver.ohlcv_1m``: MERGE of the day's bars (see ``ohlcv_sql``).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
from pyspark.sql import Observation
from pyspark.sql import functions as F

from cryptolake.lakehouse.writes import merge_window, overwrite_window
from cryptolake.tables import SILVER_OHLCV_1M, SILVER_TRADES, SILVER_TRADES_QUARANTINE, Table
from cryptolake.utc import sql_time_window
from cryptolake_dagster.asset_keys import (
    BRONZE_TRADES_BACKFILL_KEY,
    BRONZE_TRADES_KEY,
    SILVER_TRADES_KEY,
    SILVER_TRADES_QUARANTINE_KEY,
)
from cryptolake_dagster.defs.silver.ohlcv_sql import BAR_KEY, BAR_VALUES, bars_query
from cryptolake_dagster.defs.silver.trades_sql import (
    BRONZE_ROW_KEY,
    FUTURE_TOLERANCE,
    MAX_BROADCAST_DUPLICATES,
    QUARANTINE_COLUMNS,
    checked_query,
    duplicates_query,
    quarantine_query,
    silver_query,
    sorted_silver_query,
)
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource
from cryptolake_dagster.run_snapshots import run_snapshot, run_snapshot_properties, snapshot_id
from cryptolake_dagster.table_assets import daily_table_asset_kwargs, daily_table_spec_kwargs

SILVER_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=30))


def _has_rows_in_window(catalog: Catalog, table: Table, start: datetime, end: datetime) -> bool:
    """Whether the day-partitioned ``table`` has any data file in [start, end) (metadata only, no data read)."""
    window = And(GreaterThanOrEqual("trade_time", start.isoformat()), LessThan("trade_time", end.isoformat()))
    return any(True for _ in catalog.load_table(table.identifier).scan(row_filter=window).plan_files())


@dg.multi_asset(
    name="silver_trades",
    specs=[
        dg.AssetSpec(
            **daily_table_spec_kwargs(
                SILVER_TRADES, "silver", freshness=SILVER_FRESHNESS, metadata={"write": "overwrite by day"}
            ),
            deps=[BRONZE_TRADES_KEY, BRONZE_TRADES_BACKFILL_KEY],
        ),
        dg.AssetSpec(
            **daily_table_spec_kwargs(
                SILVER_TRADES_QUARANTINE,
                "silver",
                freshness=SILVER_FRESHNESS,
                metadata={"write": "merge on the Bronze row key"},
            ),
            deps=[BRONZE_TRADES_KEY, BRONZE_TRADES_BACKFILL_KEY],
        ),
    ],
    backfill_policy=dg.BackfillPolicy.multi_run(1),
)
def silver_trades(context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource):
    """The day's Bronze trades, cleaned and deduplicated (rules in ``trades_sql``); rejects to quarantine."""
    start, end = context.partition_time_window
    latest = datetime.now(UTC) + FUTURE_TOLERANCE  # one wall clock for the whole run
    spark = pyspark.spark_session
    catalog = iceberg.catalog()
    checked = spark.sql(checked_query(start, end, latest))
    checked.createOrReplaceTempView("silver_trades_checked")
    # The rows whose natural key occurs more than once (usually few): found without sorting the day's rows.
    duplicates = spark.sql(duplicates_query("silver_trades_checked")).cache()
    duplicates.createOrReplaceTempView("silver_trades_duplicates")
    # Counted while the overwrite reads Bronze (no extra scan of the day).
    bronze_stats = Observation("silver_trades_bronze")
    checked.observe(
        bronze_stats, F.count(F.lit(1)).alias("bronze_rows"), F.count_if(F.col("reason").isNotNull()).alias("rejected")
    ).createOrReplaceTempView("silver_trades_checked_observed")
    try:
        duplicate_rows = duplicates.count()
        broadcast = duplicate_rows <= MAX_BROADCAST_DUPLICATES
        context.log.info(
            f"overwriting [{start}, {end}) of {SILVER_TRADES.identifier} from Bronze "
            f"({duplicate_rows} rows with a duplicated key, deduplicated by {'broadcast' if broadcast else 'sort'})"
        )
        silver = (
            silver_query("silver_trades_checked_observed", "silver_trades_duplicates")
            if broadcast
            else sorted_silver_query("silver_trades_checked_observed")
        )
        overwrite_window(
            spark,
            SILVER_TRADES,
            spark.sql(silver),
            sql_time_window("trade_time", start, end),
            run_snapshot_properties(context.run.run_id),
        )
        counts = bronze_stats.get  # waits for the overwrite's metrics; empty if Spark reported none
        if "bronze_rows" not in counts:
            counts = spark.sql(
                "SELECT count(*) AS bronze_rows, count_if(reason IS NOT NULL) AS rejected FROM silver_trades_checked"
            ).first()
        bronze_rows, quarantined = int(counts["bronze_rows"]), int(counts["rejected"])
        if quarantined or _has_rows_in_window(catalog, SILVER_TRADES_QUARANTINE, start, end):
            merge_window(
                spark,
                SILVER_TRADES_QUARANTINE,
                spark.sql(quarantine_query("silver_trades_checked")),
                BRONZE_ROW_KEY,
                sql_time_window("t.trade_time", start, end),
                "silver_trades_quarantine_batch",
                compare=[column for column in QUARANTINE_COLUMNS if column not in BRONZE_ROW_KEY],
                touch="quarantined_at",
            )
    finally:
        spark.catalog.dropTempView("silver_trades_checked_observed")
        spark.catalog.dropTempView("silver_trades_duplicates")
        spark.catalog.dropTempView("silver_trades_checked")
        duplicates.unpersist()
    reasons: dict[str, int] = {}
    if quarantined:
        counts = spark.sql(
            f"SELECT reason, count(*) AS rows FROM {SILVER_TRADES_QUARANTINE.identifier} "
            f"WHERE {sql_time_window('trade_time', start, end)} GROUP BY reason"
        )
        reasons = {row["reason"]: int(row["rows"]) for row in counts.collect()}

    snapshot = run_snapshot(catalog.load_table(SILVER_TRADES.identifier), context.run.run_id)
    rows = int(snapshot.summary["added-records"] or 0) if snapshot and snapshot.summary else 0
    duplicates = bronze_rows - quarantined - rows
    context.log.info(f"{rows} Silver trades ({duplicates} duplicates collapsed), {quarantined} quarantined")
    yield dg.MaterializeResult(
        asset_key=SILVER_TRADES_KEY,
        metadata={
            "rows": dg.MetadataValue.int(rows),
            "bronze_rows": dg.MetadataValue.int(bronze_rows),
            "duplicates_collapsed": dg.MetadataValue.int(duplicates),
            "quarantined": dg.MetadataValue.int(quarantined),
            "deduplication": dg.MetadataValue.text("broadcast" if broadcast else "sort"),
            "iceberg_snapshot_id": dg.MetadataValue.text(str(snapshot.snapshot_id) if snapshot else "none"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=SILVER_TRADES_QUARANTINE_KEY,
        metadata={
            "rows": dg.MetadataValue.int(quarantined),
            "reasons": dg.MetadataValue.json(reasons),
            "future_tolerance_s": dg.MetadataValue.int(int(FUTURE_TOLERANCE.total_seconds())),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(catalog, SILVER_TRADES_QUARANTINE)),
        },
    )


@dg.asset(**daily_table_asset_kwargs(SILVER_OHLCV_1M, "silver", freshness=SILVER_FRESHNESS), deps=[SILVER_TRADES_KEY])
def silver_ohlcv_1m(
    context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """1-minute bars for the partition's day from silver.trades (MERGE: re-runs converge)."""
    start, end = context.partition_time_window
    spark = pyspark.spark_session
    bars = spark.sql(bars_query(start, end)).cache()
    # One aggregate stage over the cached bars (count(DISTINCT) would add an AQE stage and job).
    stats = bars.selectExpr("count(*) AS bars", "size(collect_set(symbol)) AS symbols").first()
    bar_count, symbols = int(stats["bars"]), int(stats["symbols"])  # after the MERGE the window holds exactly these
    context.log.info(f"merging {bar_count} bars for [{start}, {end}) into {SILVER_OHLCV_1M.identifier}")
    merge_window(
        spark,
        SILVER_OHLCV_1M,
        bars,
        BAR_KEY,
        sql_time_window("t.minute", start, end),
        "silver_ohlcv_1m_batch",
        compare=BAR_VALUES,
        touch="built_at",
    )
    bars.unpersist()
    return dg.MaterializeResult(
        metadata={
            "bars": dg.MetadataValue.int(bar_count),
            "symbols": dg.MetadataValue.int(symbols),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(iceberg.catalog(), SILVER_OHLCV_1M)),
        }
    )
