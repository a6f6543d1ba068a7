"""The batch-sources domain: CoinGecko, Fear & Greed and Binance klines into Bronze, their Silver tables, the
daily job and schedule, the HTTP resources of the three APIs, and the history tables the importers write (the
Binance archives' monthly asset and job, its archive resource)."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.sources.history import (
    bronze_agg_trades_archive,
    bronze_binance_klines_archive,
    bronze_ohlcv_csv,
)
from cryptolake_dagster.defs.sources.jobs import (
    BATCH_SOURCE_ASSETS,
    batch_sources_job,
    batch_sources_schedule,
    binance_agg_trades_job,
    binance_archive_job,
)
from cryptolake_dagster.defs.sources.resources import build_source_resources


def defs(settings: Settings) -> dg.Definitions:
    """The assets also use the shared ``pyspark`` and ``iceberg`` resources."""
    return dg.Definitions(
        assets=[*BATCH_SOURCE_ASSETS, bronze_binance_klines_archive, bronze_agg_trades_archive, bronze_ohlcv_csv],
        jobs=[batch_sources_job, binance_archive_job, binance_agg_trades_job],
        schedules=[batch_sources_schedule],
        resources=build_source_resources(settings),
    )
