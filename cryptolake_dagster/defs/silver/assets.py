"""Silver assets built with Spark from Bronze, one UTC day per partition."""

from datetime import timedelta

import dagster as dg

from cryptolake.tables import SILVER_OHLCV_1M
from cryptolake_dagster.asset_keys import BRONZE_TRADES_KEY, SILVER_OHLCV_1M_KEY
from cryptolake_dagster.defs.silver.ohlcv_sql import bars_query, merge_statement
from cryptolake_dagster.partitions import daily_partitions
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource


@dg.asset(
    key=SILVER_OHLCV_1M_KEY,
    deps=[BRONZE_TRADES_KEY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    group_name="silver",
    kinds={"spark", "iceberg"},
    description=SILVER_OHLCV_1M.description,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=30)),
    metadata={"table": SILVER_OHLCV_1M.identifier},
)
def silver_ohlcv_1m(
    context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """1-minute bars for the partition's day from deduplicated Bronze trades (MERGE: re-runs converge)."""
    start, end = context.partition_time_window
    spark = pyspark.spark_session
    bars = spark.sql(bars_query(start, end)).cache()
    bar_count = bars.count()
    bars.createOrReplaceTempView("silver_ohlcv_1m_batch")
    context.log.info(f"merging {bar_count} bars for [{start}, {end}) into {SILVER_OHLCV_1M.identifier}")
    spark.sql(merge_statement("silver_ohlcv_1m_batch", start, end))
    bars.unpersist()
    snapshot = iceberg.catalog().load_table(SILVER_OHLCV_1M.identifier).current_snapshot()
    symbols = spark.sql(
        f"SELECT count(DISTINCT symbol) FROM {SILVER_OHLCV_1M.identifier} "
        f"WHERE minute >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}' AND minute < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'"
    ).first()[0]
    return dg.MaterializeResult(
        metadata={
            "bars": dg.MetadataValue.int(bar_count),
            "symbols": dg.MetadataValue.int(int(symbols)),
            "iceberg_snapshot_id": dg.MetadataValue.text(str(snapshot.snapshot_id) if snapshot else "none"),
        }
    )
