"""History tables written outside Dagster, by the file importers of ``cryptolake import``, declared as asset specs."""

from __future__ import annotations

import dagster as dg

from cryptolake.tables import BRONZE_OHLCV_CSV
from cryptolake_dagster.asset_keys import table_key

bronze_ohlcv_csv = dg.AssetSpec(
    key=table_key(BRONZE_OHLCV_CSV),
    description=BRONZE_OHLCV_CSV.description + " Written by `cryptolake import csv`.",
    group_name="bronze",
    kinds={"csv", "iceberg"},
    metadata={"table": BRONZE_OHLCV_CSV.identifier, "writer": "cryptolake import csv"},
)
