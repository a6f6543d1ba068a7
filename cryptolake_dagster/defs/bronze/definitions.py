"""The Bronze domain: the tables the streaming Bronze writer fills and the sensor on their new snapshots."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.bronze.assets import bronze_trades, bronze_trades_rejected
from cryptolake_dagster.defs.bronze.sensors import bronze_trades_sensor


def defs(settings: Settings) -> dg.Definitions:
    """Bronze asset specs and the sensor that launches ``silver_gold_daily``; it uses the ``iceberg`` resource."""
    return dg.Definitions(assets=[bronze_trades, bronze_trades_rejected], sensors=[bronze_trades_sensor])
