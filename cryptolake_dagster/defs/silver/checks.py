"""Blocking Soda checks of the Silver tables: a failing check stops downstream materialization of the partition."""

import dagster as dg

from cryptolake.tables import SILVER_OHLCV_1M, SILVER_TRADES
from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY, SILVER_TRADES_KEY
from cryptolake_dagster.quality.asset_checks import partition_filter, soda_check_result
from cryptolake_dagster.quality.soda_scan import SODA_DIR, run_soda_scan
from cryptolake_dagster.resources import LakehouseSparkResource


@dg.asset_check(asset=SILVER_OHLCV_1M_KEY, blocking=True, description="Soda scan of silver/ohlcv_1m.yml")
def soda_silver_ohlcv_1m(
    context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource
) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(SILVER_OHLCV_1M.identifier).where(partition_filter(context, "minute"))
    return soda_check_result(run_soda_scan(frame, "ohlcv_1m", SODA_DIR / "silver" / "ohlcv_1m.yml", "silver_ohlcv_1m"))


@dg.asset_check(asset=SILVER_TRADES_KEY, blocking=True, description="Soda scan of silver/trades.yml")
def soda_silver_trades(context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(SILVER_TRADES.identifier).where(partition_filter(context, "trade_time"))
    return soda_check_result(run_soda_scan(frame, "silver_trades", SODA_DIR / "silver" / "trades.yml", "silver_trades"))
