"""The one Dagster ``Definitions`` object of CryptoLake: every layer's assets, checks, jobs and sensors."""

from __future__ import annotations

import dagster as dg

from cryptolake.logging import configure_logging
from cryptolake.settings import get_settings
from cryptolake_dagster.defs.bronze.assets import bronze_trades, bronze_trades_rejected
from cryptolake_dagster.defs.bronze.sensors import bronze_trades_sensor
from cryptolake_dagster.defs.dbt.assets import gold_dbt_models
from cryptolake_dagster.defs.gold.checks import soda_gold_fct_ohlcv_1h, soda_silver_ohlcv_1m, soda_silver_trades
from cryptolake_dagster.defs.silver.assets import silver_ohlcv_1m, silver_trades
from cryptolake_dagster.defs.sources import ASSETS as SOURCE_ASSETS
from cryptolake_dagster.defs.sources import RESOURCES as SOURCE_RESOURCES
from cryptolake_dagster.jobs import daily_pipeline_job
from cryptolake_dagster.resources import build_resources
from cryptolake_dagster.schedules import batch_sources_job, batch_sources_schedule

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)

defs = dg.Definitions(
    assets=[bronze_trades, bronze_trades_rejected, silver_trades, silver_ohlcv_1m, gold_dbt_models, *SOURCE_ASSETS],
    asset_checks=[soda_silver_trades, soda_silver_ohlcv_1m, soda_gold_fct_ohlcv_1h],
    jobs=[daily_pipeline_job, batch_sources_job],
    schedules=[batch_sources_schedule],
    sensors=[bronze_trades_sensor],
    resources={**build_resources(settings), **SOURCE_RESOURCES},
    # Steps share the run's Spark session (a JVM per step would cost ~10 s and ~600 MB each on 2 cores).
    executor=dg.in_process_executor,
)
