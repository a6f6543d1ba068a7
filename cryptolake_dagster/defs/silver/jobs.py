"""The daily Silver -> Gold job, which the Bronze sensor launches for every changed day."""

from __future__ import annotations

import dagster as dg

from cryptolake_dagster.asset_keys import SILVER_TRADES_KEY

silver_gold_daily_job = dg.define_asset_job(
    "silver_gold_daily",
    # silver/trades -> silver/ohlcv_1m -> dbt Gold models; the op of silver/trades also writes
    # silver/trades_quarantine (required_multi_asset_neighbors adds it).
    selection=dg.AssetSelection.assets(SILVER_TRADES_KEY).required_multi_asset_neighbors().downstream(),
    # One process per run: all steps share one Spark session instead of starting a JVM per step.
    executor_def=dg.in_process_executor,
    description="Rebuild one UTC day of Silver and everything downstream of it (dbt Gold models, Soda checks).",
)
