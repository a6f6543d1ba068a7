"""Bronze tables written outside Dagster (by the streaming Bronze writer), declared as asset specs."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_REJECTED
from cryptolake_dagster.asset_keys import BRONZE_TRADES_KEY, BRONZE_TRADES_REJECTED_KEY
from cryptolake_dagster.partitions import daily_partitions

bronze_trades = dg.AssetSpec(
    key=BRONZE_TRADES_KEY,
    description=BRONZE_TRADES.description + " Written continuously by `python -m streaming.bronze_writer`.",
    group_name="bronze",
    kinds={"kafka", "spark", "iceberg"},
    partitions_def=daily_partitions,
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=15), warn_window=timedelta(minutes=2)
    ),
    metadata={"table": BRONZE_TRADES.identifier, "writer": "streaming.bronze_writer"},
)

bronze_trades_rejected = dg.AssetSpec(
    key=BRONZE_TRADES_REJECTED_KEY,
    description=BRONZE_TRADES_REJECTED.description,
    group_name="bronze",
    kinds={"spark", "iceberg"},
    metadata={"table": BRONZE_TRADES_REJECTED.identifier, "writer": "streaming.bronze_writer"},
)
