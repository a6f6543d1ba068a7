"""Refresh or rebuild: how a run of the daily Silver/Gold assets decides, and what it tells the steps after it.

A run of one daily partition *refreshes*: Silver reads only what Bronze received since the day was last written
(``cryptolake_dagster.defs.silver.refresh``) and Gold rebuilds only the bars and days of the minutes Silver
touched. A ranged run, a backfill, or a run tagged ``lake/refresh=full`` *rebuilds* every day in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY

REFRESH_TAG = "lake/refresh"
#: Metadata of a silver/ohlcv_1m materialization: the silver.trades snapshot its bars were built from, and (for
#: a refresh, also on silver/trades) the span of the minutes it rebuilt.
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


def refreshed_window(
    instance: dg.DagsterInstance, partition_keys: Sequence[str], gold_keys: Sequence[dg.AssetKey]
) -> tuple[datetime, datetime] | None:
    """The span Gold must rebuild for a run of one day (``partition_keys``): every silver/ohlcv_1m refresh of the day that the Gold
    assets ``gold_keys`` have not all been materialized after yet — this run's, and those of earlier runs whose Gold
    step failed — as one span [first minute, last end). None (rebuild the day's window) when one of them rebuilt the
    day in full, when one of ``gold_keys`` was never materialized for the day, or when no refresh is pending."""
    if len(partition_keys) != 1:
        return None
    (partition,) = partition_keys
    marks = []
    for key in gold_keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        if not records:
            return None
        marks.append(records[0].storage_id)
    pending = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=SILVER_OHLCV_1M_KEY, asset_partitions=[partition], after_storage_id=min(marks)),
        limit=1000,
    )
    if not pending.records or pending.has_more:
        return None
    spans = []
    for record in pending.records:
        span = _span(record)
        if span is None:
            return None  # that run rebuilt the day's bars in full
        spans.append(span)
    return min(start for start, _ in spans), max(end for _, end in spans)


def refreshed_span(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str, run_id: str
) -> tuple[datetime, datetime] | None:
    """The span [from, to) of the minutes the run ``run_id`` refreshed in ``asset_key``'s day (its materialization
    in that run names it: silver/trades, silver/ohlcv_1m); None when it rebuilt the day or did not run."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].run_id != run_id:
        return None
    return _span(records[0])


def _span(record: dg.EventLogRecord) -> tuple[datetime, datetime] | None:
    """The refreshed span [from, to) a materialization names in its metadata (None: it names none)."""
    metadata = record.asset_materialization.metadata if record.asset_materialization else {}
    start, end = metadata.get(REFRESHED_FROM), metadata.get(REFRESHED_TO)
    if start is None or end is None or not start.value or not end.value:
        return None
    return (
        datetime.fromisoformat(str(start.value)).astimezone(UTC),
        datetime.fromisoformat(str(end.value)).astimezone(UTC),
    )
