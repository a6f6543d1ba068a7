"""Blocking Soda asset checks: a failing check stops downstream materialization of the partition."""

import dagster as dg

from cryptolake.tables import GOLD_OHLCV_1H, SILVER_OHLCV_1M, SILVER_TRADES
from cryptolake.utc import sql_timestamp
from cryptolake_dagster.asset_keys import GOLD_OHLCV_1H_KEY, SILVER_OHLCV_1M_KEY, SILVER_TRADES_KEY
from cryptolake_dagster.quality.soda_scan import SODA_DIR, SodaOutcome, run_soda_scan
from cryptolake_dagster.resources import LakehouseSparkResource


def _result(outcome: SodaOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "checks": dg.MetadataValue.json(outcome.checks),
            "failed": dg.MetadataValue.text(", ".join(outcome.failed_checks) or "none"),
        },
    )


def _partition_filter(context: dg.AssetCheckExecutionContext, column: str) -> str:
    # Checks run inside the partitioned run that materialized the asset; use its partition window.
    start, end = context.op_execution_context.partition_time_window
    return f"{column} >= {sql_timestamp(start)} AND {column} < {sql_timestamp(end)}"


@dg.asset_check(asset=GOLD_OHLCV_1H_KEY, blocking=True, description="Soda scan of gold/fct_ohlcv_1h.yml")
def soda_gold_fct_ohlcv_1h(
    context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource
) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(GOLD_OHLCV_1H).where(_partition_filter(context, "hour"))
    return _result(run_soda_scan(frame, "fct_ohlcv_1h", SODA_DIR / "gold" / "fct_ohlcv_1h.yml", "gold_fct_ohlcv_1h"))


@dg.asset_check(asset=SILVER_OHLCV_1M_KEY, blocking=True, description="Soda scan of silver/ohlcv_1m.yml")
def soda_silver_ohlcv_1m(
    context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource
) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(SILVER_OHLCV_1M.identifier).where(_partition_filter(context, "minute"))
    return _result(run_soda_scan(frame, "ohlcv_1m", SODA_DIR / "silver" / "ohlcv_1m.yml", "silver_ohlcv_1m"))


@dg.asset_check(asset=SILVER_TRADES_KEY, blocking=True, description="Soda scan of silver/trades.yml")
def soda_silver_trades(context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource) -> dg.AssetCheckResult:
    frame = pyspark.spark_session.table(SILVER_TRADES.identifier).where(_partition_filter(context, "trade_time"))
    return _result(run_soda_scan(frame, "silver_trades", SODA_DIR / "silver" / "trades.yml", "silver_trades"))
