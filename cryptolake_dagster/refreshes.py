"""Refresh or rebuild: how a run of the daily Silver/Gold assets decides, and what it tells the steps after it.

A run of one daily partition *refreshes*: Silver reads only what Bronze received since the day was last written
(``cryptolake_dagster.defs.silver.refresh``) and Gold rebuilds only the bars and days of the minutes Silver
touched. A ranged run, a backfill, or a run tagged ``lake/refresh=full`` *rebuilds* every day in full.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY

REFRESH_TAG = "lake/refresh"
#: Metadata of a silver/ohlcv_1m materialization: the silver.trades snapshot its bars were built from, and (for
#: a refresh) the span of the minutes it rebuilt.
BARS_BUILT_FROM = "silver_trades_snapshot"
REFRESHED_FROM = "refreshed_from"
REFRESHED_TO = "refreshed_to"


def full_rebuild_reason(context: dg.AssetExecutionContext) -> str | None:
    """Why this run rebuilds its days in full (None: it refreshes its one day)."""
    tags = context.run.tags
    if tags.get(REFRESH_TAG) == "full":
        return f"the run is tagged {REFRESH_TAG}=full"
    if "dagster/backfill" in tags:
        return "a backfill rebuilds its days in full"
    if len(context.partition_keys) != 1:
        return "a ranged run rebuilds its days in full"
    return None


def last_bars_materialization(instance: dg.DagsterInstance, partition_key: str) -> dg.EventLogRecord | None:
    """The newest materialization of silver/ohlcv_1m for ``partition_key``."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SILVER_OHLCV_1M_KEY, asset_partitions=[partition_key]), limit=1
    ).records
    return records[0] if records else None


def bars_built_from(instance: dg.DagsterInstance, partition_key: str) -> int | None:
    """The silver.trades snapshot the day's bars were last built from (None: unknown)."""
    record = last_bars_materialization(instance, partition_key)
    if record is None or record.asset_materialization is None:
        return None
    value = record.asset_materialization.metadata.get(BARS_BUILT_FROM)
    text = str(value.value) if value is not None else ""
    return int(text) if text.lstrip("-").isdigit() else None


def refreshed_window(context: dg.AssetExecutionContext) -> tuple[datetime, datetime] | None:
    """The span of the minutes this run's silver/ohlcv_1m step refreshed, if it refreshed (Gold then rebuilds only
    the bars and days of that span); None when it rebuilt the day or did not run in this run."""
    if len(context.partition_keys) != 1:
        return None
    record = last_bars_materialization(context.instance, context.partition_key)
    if record is None or record.run_id != context.run.run_id or record.asset_materialization is None:
        return None
    metadata = record.asset_materialization.metadata
    start, end = metadata.get(REFRESHED_FROM), metadata.get(REFRESHED_TO)
    if start is None or end is None or not start.value or not end.value:
        return None
    return datetime.fromisoformat(str(start.value)).astimezone(UTC), datetime.fromisoformat(str(end.value)).astimezone(
        UTC
    )
