"""``repair_day``: repair a day's incomplete minutes and rebuild and re-check everything downstream."""

from __future__ import annotations

import dagster as dg

from cryptolake_dagster.asset_keys import BRONZE_TRADES_BACKFILL_KEY

repair_day_job = dg.define_asset_job(
    "repair_day",
    # bronze/trades_backfill -> silver/trades (+ quarantine) -> silver/ohlcv_1m -> dbt Gold (completeness included)
    selection=dg.AssetSelection.assets(BRONZE_TRADES_BACKFILL_KEY).downstream().required_multi_asset_neighbors(),
    executor_def=dg.in_process_executor,
    description="Fetch over REST the aggregate trades a UTC day's incomplete minutes are missing (per "
    "gold.fct_completeness_1m), rebuild the day's Silver trades and bars and the Gold models, and check the day "
    "again. Launch it for a partition in the UI, or: cryptolake repair --from DAY.",
)
