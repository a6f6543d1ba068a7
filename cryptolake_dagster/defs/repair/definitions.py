"""The repair domain: bronze/trades_backfill (REST repair of a day's missing aggregate ids) and the repair_day job."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.repair.assets import bronze_trades_backfill
from cryptolake_dagster.defs.repair.jobs import repair_day_job
from cryptolake_dagster.defs.repair.resources import BinanceTradesRestResource


def defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[bronze_trades_backfill],
        jobs=[repair_day_job],
        resources={"binance_trades_rest": BinanceTradesRestResource.from_settings(settings)},
    )
