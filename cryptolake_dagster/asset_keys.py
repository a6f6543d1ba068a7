"""Dagster asset keys derived from the table registry: one Iceberg table, one asset key ``[namespace, name]``."""

from __future__ import annotations

import dagster as dg

from cryptolake.tables import (
    BRONZE_TRADES,
    BRONZE_TRADES_BACKFILL,
    BRONZE_TRADES_REJECTED,
    GOLD_OHLCV_1H,
    SILVER_OHLCV_1M,
    SILVER_TRADES,
    SILVER_TRADES_QUARANTINE,
    Table,
)


def table_key(table: Table) -> dg.AssetKey:
    return dg.AssetKey([table.namespace, table.name])


BRONZE_TRADES_KEY = table_key(BRONZE_TRADES)
BRONZE_TRADES_REJECTED_KEY = table_key(BRONZE_TRADES_REJECTED)
BRONZE_TRADES_BACKFILL_KEY = table_key(BRONZE_TRADES_BACKFILL)
#: The aggTrades archives' asset: it writes bronze.trades_backfill too (the rows with source = 'archive').
BRONZE_AGG_TRADES_ARCHIVE_KEY = dg.AssetKey([BRONZE_TRADES_BACKFILL.namespace, "agg_trades_archive"])
SILVER_OHLCV_1M_KEY = table_key(SILVER_OHLCV_1M)
SILVER_TRADES_KEY = table_key(SILVER_TRADES)
SILVER_TRADES_QUARANTINE_KEY = table_key(SILVER_TRADES_QUARANTINE)
GOLD_OHLCV_1H_KEY = dg.AssetKey(GOLD_OHLCV_1H.split("."))
#: What silver/trades reads: the live trades and the backfilled ones (REST repairs, aggTrades archives).
SILVER_TRADES_INPUTS = [BRONZE_TRADES_KEY, BRONZE_TRADES_BACKFILL_KEY, BRONZE_AGG_TRADES_ARCHIVE_KEY]
