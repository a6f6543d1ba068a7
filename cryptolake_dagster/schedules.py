"""Schedules: the batch sources are fetched daily (yesterday's partition, so each day's closing point lands)."""

import dagster as dg

from cryptolake_dagster.defs.sources import ASSETS as SOURCE_ASSETS

batch_sources_job = dg.define_asset_job(
    "batch_sources_daily",
    selection=dg.AssetSelection.assets(*SOURCE_ASSETS),
    description="CoinGecko, Fear & Greed and Binance klines into Bronze, then their Silver tables, for one day.",
)

batch_sources_schedule = dg.build_schedule_from_partitioned_job(
    batch_sources_job, hour_of_day=0, minute_of_hour=20, default_status=dg.DefaultScheduleStatus.RUNNING
)
