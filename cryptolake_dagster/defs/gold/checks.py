"""Blocking Soda check of the Gold fact table (built by dbt): a failing check fails the partition's run."""

import dagster as dg

from cryptolake.tables import GOLD_OHLCV_1H
from cryptolake_dagster.asset_keys import GOLD_OHLCV_1H_KEY
from cryptolake_dagster.quality.asset_checks import partition_filter, soda_check_result
from cryptolake_dagster.quality.soda_scan import SODA_DIR, run_soda_scan
from cryptolake_dagster.resources import LakehouseSparkResource


@dg.asset_check(asset=GOLD_OHLCV_1H_KEY, blocking=True, description="Soda scan of gold/fct_ohlcv_1h.yml")
def soda_gold_fct_ohlcv_1h(
    context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource
) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(GOLD_OHLCV_1H).where(partition_filter(context, "hour"))
    return soda_check_result(
        run_soda_scan(frame, "fct_ohlcv_1h", SODA_DIR / "gold" / "fct_ohlcv_1h.yml", "gold_fct_ohlcv_1h")
    )
