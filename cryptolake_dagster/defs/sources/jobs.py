"""The batch sources' daily job and its schedule (yesterday's partition, so each day's closing point lands); the
monthly job of the Binance archives (no schedule: it runs once the archive source is configured, for the months
asked for)."""

from __future__ import annotations

import dagster as dg

from cryptolake_dagster.defs.sources.assets import (
    bronze_binance_klines,
    bronze_coingecko_market_chart,
    bronze_fear_greed,
)
from cryptolake_dagster.defs.sources.history import bronze_agg_trades_archive, bronze_binance_klines_archive
from cryptolake_dagster.defs.sources.silver import silver_daily_prices, silver_fear_greed

BATCH_SOURCE_ASSETS = [
    bronze_coingecko_market_chart,
    bronze_fear_greed,
    bronze_binance_klines,
    silver_daily_prices,
    silver_fear_greed,
]

batch_sources_job = dg.define_asset_job(
    "batch_sources_daily",
    selection=dg.AssetSelection.assets(*BATCH_SOURCE_ASSETS),
    description="CoinGecko, Fear & Greed and Binance klines into Bronze, then their Silver tables, for one day.",
)

batch_sources_schedule = dg.build_schedule_from_partitioned_job(
    batch_sources_job, hour_of_day=0, minute_of_hour=20, default_status=dg.DefaultScheduleStatus.RUNNING
)

binance_archive_job = dg.define_asset_job(
    "binance_archive_monthly",
    selection=dg.AssetSelection.assets(bronze_binance_klines_archive),
    description="Binance public kline archives of one month (CRYPTOLAKE_ARCHIVE_ROOT or CRYPTOLAKE_ARCHIVE_BASE_URL) "
    "into bronze.binance_klines (source = 'archive').",
)

binance_agg_trades_job = dg.define_asset_job(
    "binance_agg_trades_daily",
    # the import, then silver/trades (+ quarantine) -> silver/ohlcv_1m -> dbt Gold for the same day
    selection=dg.AssetSelection.assets(bronze_agg_trades_archive).downstream().required_multi_asset_neighbors(),
    executor_def=dg.in_process_executor,
    description="Binance public aggTrades archives of one day into bronze.trades_backfill (source = 'archive'), "
    "then the day's Silver trades and bars and the Gold models rebuilt with them.",
)
