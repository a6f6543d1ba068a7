"""The Silver domain: silver.trades (+ quarantine) and silver.ohlcv_1m, their Soda checks and the daily job."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.silver.assets import silver_ohlcv_1m, silver_trades
from cryptolake_dagster.defs.silver.checks import soda_silver_ohlcv_1m, soda_silver_trades
from cryptolake_dagster.defs.silver.jobs import silver_gold_daily_job


def defs(settings: Settings) -> dg.Definitions:
    """Assets, checks and job of the Silver domain; they use the shared ``pyspark`` and ``iceberg`` resources."""
    return dg.Definitions(
        assets=[silver_trades, silver_ohlcv_1m],
        asset_checks=[soda_silver_trades, soda_silver_ohlcv_1m],
        jobs=[silver_gold_daily_job],
    )
