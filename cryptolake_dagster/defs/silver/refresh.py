"""A refresh of one Silver day that reads only what arrived since the day was last written (see ``increments``).

* ``silver.trades``: the bronze.trades rows appended between the day's marked Bronze snapshot and the current one
  (an Iceberg incremental append scan, filtered to the day) are checked and deduplicated among themselves with the
  rules of ``trades_sql``; their rejects are appended to the quarantine (those it does not hold yet), their trades
  appended to Silver in one commit that moves the day's mark. A new trade whose natural key Silver already holds
  (a copy arriving later, which could change the kept occurrence and ``bronze_copies``) is not appended: the day is
  rebuilt in full instead, so both paths give the same table.
* ``silver.ohlcv_1m``: the minutes of the Silver rows appended to the day since the snapshot the day's bars were
  last built from (the ``silver_trades_snapshot`` of the asset's last materialization of the day) are rebuilt
  from all of their trades and MERGEd (no deletes: a refresh only adds trades). A non-append commit of the day
  since then (a full rebuild) or a mark that left the lineage rebuilds every bar of the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.table.snapshots import Operation
from pyspark.sql import SparkSession

from cryptolake.lakehouse.writes import column_names, merge_window
from cryptolake.tables import BRONZE_TRADES, SILVER_OHLCV_1M, SILVER_TRADES, SILVER_TRADES_QUARANTINE
from cryptolake.utc import EPOCH, sql_timestamp
from cryptolake_dagster.defs.silver.increments import BronzeState, DayMark, commits_since, snapshot_day
from cryptolake_dagster.defs.silver.ohlcv_sql import BAR_KEY, BAR_VALUES, bars_query
from cryptolake_dagster.defs.silver.trades_sql import (
    held_keys_query,
    increment_checked_query,
    new_rejects_query,
    sorted_silver_query,
)
from cryptolake_dagster.run_snapshots import run_snapshot_properties

ONE_DAY = timedelta(days=1)
ONE_MINUTE = timedelta(minutes=1)


def due_future_trades(catalog: Catalog, start: datetime, latest: datetime) -> int:
    """Quarantined "future" trades of the day starting at ``start`` whose time has now come (a full rebuild
    accepts them; an increment would not re-read them)."""
    end = min(start + ONE_DAY - timedelta(microseconds=1), latest)
    if end < start:
        return 0
    quarantine = catalog.load_table(SILVER_TRADES_QUARANTINE.identifier)
    window = And(GreaterThanOrEqual("trade_time", start.isoformat()), LessThanOrEqual("trade_time", end.isoformat()))
    reasons = quarantine.scan(row_filter=window, selected_fields=("reason",)).to_arrow().column("reason").to_pylist()
    return sum("future_trade_time" in (reason or "") for reason in reasons)


@dataclass
class Increment:
    """What a refresh of one day of silver.trades did (``full_rebuild_because``: it did nothing, and why)."""

    bronze_rows: int = 0
    quarantined: int = 0
    rows: int = 0
    full_rebuild_because: str | None = None
    #: the span of the new Silver trades' minutes [first, last + 1 min), when there are any
    start: datetime | None = None
    end: datetime | None = None


def refresh_trades_day(
    spark: SparkSession,
    catalog: Catalog,
    day: datetime,
    latest: datetime,
    run_id: str,
    mark: DayMark,
    state: BronzeState,
) -> Increment:
    """Apply the bronze.trades rows appended since ``mark`` (up to ``state``) to one day of Silver."""
    if mark.state.trades == state.trades:
        return Increment()
    start, end = day, day + ONE_DAY
    increment = (
        spark.read.format("iceberg")
        .option("start-snapshot-id", str(mark.state.trades))
        .option("end-snapshot-id", str(state.trades))
        .load(BRONZE_TRADES.identifier)
    )
    increment.createOrReplaceTempView("silver_bronze_increment")
    checked = spark.sql(increment_checked_query("silver_bronze_increment", start, end, latest)).cache()
    checked.createOrReplaceTempView("silver_increment_checked")
    rows = spark.sql(sorted_silver_query("silver_increment_checked")).cache()
    rows.createOrReplaceTempView("silver_increment_rows")
    try:
        counts = checked.selectExpr(
            "count(*) AS bronze_rows",
            "count_if(reason IS NOT NULL) AS rejected",
            "unix_micros(min(CASE WHEN reason IS NOT NULL THEN trade_time END)) AS rejected_low",
            "unix_micros(max(CASE WHEN reason IS NOT NULL THEN trade_time END)) AS rejected_high",
        ).first()
        stats = rows.selectExpr(
            "count(*) AS rows", "unix_micros(min(trade_time)) AS low", "unix_micros(max(trade_time)) AS high"
        ).first()
        result = Increment(int(counts["bronze_rows"]), int(counts["rejected"]), int(stats["rows"]))
        if result.rows:
            result.start = _utc(stats["low"]).replace(second=0, microsecond=0)
            result.end = _utc(stats["high"]).replace(second=0, microsecond=0) + timedelta(minutes=1)
        if result.rows:
            held = spark.sql(held_keys_query("silver_increment_rows", _utc(stats["low"]), _utc(stats["high"]))).count()
            if held:
                return Increment(
                    full_rebuild_because=f"{held} new trade(s) with a key {SILVER_TRADES.identifier} already holds"
                )
        if result.quarantined:
            new_rejects = spark.sql(
                new_rejects_query(
                    "silver_increment_checked", _utc(counts["rejected_low"]), _utc(counts["rejected_high"])
                )
            )
            new_rejects.writeTo(SILVER_TRADES_QUARANTINE.identifier).options(
                **_snapshot_options(run_snapshot_properties(run_id))
            ).append()
        if result.rows:
            silver = rows.select(*column_names(SILVER_TRADES))
            properties = {**run_snapshot_properties(run_id), **state.properties(day.date())}
            silver.writeTo(SILVER_TRADES.identifier).options(**_snapshot_options(properties)).append()
            concurrent = _concurrent_commits(catalog, mark, run_id, day)
            if concurrent:
                return Increment(full_rebuild_because=f"concurrent commit(s) of the day: {concurrent}")
        return result
    finally:
        for view in ("silver_increment_rows", "silver_increment_checked", "silver_bronze_increment"):
            spark.catalog.dropTempView(view)
        rows.unpersist()
        checked.unpersist()


def _utc(micros: int) -> datetime:
    """A collected ``unix_micros`` value as an aware UTC datetime (collected timestamps would be local time)."""
    return EPOCH + timedelta(microseconds=micros)


def _snapshot_options(properties: dict[str, str]) -> dict[str, str]:
    return {f"snapshot-property.{key}": value for key, value in properties.items()}


def _concurrent_commits(catalog: Catalog, mark: DayMark, run_id: str, day: datetime) -> list[int]:
    """Commits of the day by another run between ``mark`` and this run's append (two refreshes of one day at once
    would both have appended the same increment)."""
    silver = catalog.load_table(SILVER_TRADES.identifier)
    commits = commits_since(silver, mark.snapshot_id, silver.current_snapshot().snapshot_id) or []
    ours = {s.snapshot_id for s in commits if (s.summary or {}).get("dagster.run-id") == run_id}
    return [s.snapshot_id for s in commits if snapshot_day(s) == day.date().isoformat() and s.snapshot_id not in ours]


# --- bars --------------------------------------------------------------------------------------------------------


def why_rebuild_all_bars(catalog: Catalog, day: datetime, built_from: int | None, now: int | None) -> str | None:
    """Why the bars of ``day`` built from silver.trades snapshot ``built_from`` cannot be refreshed from the
    appends since (None: they can)."""
    if built_from is None:
        return "no refresh mark of the day's bars yet"
    commits = commits_since(catalog.load_table(SILVER_TRADES.identifier), built_from, now)
    if commits is None:
        return f"{SILVER_TRADES.identifier} snapshot {built_from} is no longer in the table's lineage"
    for snapshot in commits:
        operation = snapshot.summary.operation if snapshot.summary is not None else None
        if operation in (Operation.APPEND, Operation.REPLACE):
            continue
        if snapshot_day(snapshot) not in (None, day.date().isoformat()):
            continue  # a rebuild of another day
        return f"{SILVER_TRADES.identifier} snapshot {snapshot.snapshot_id} ({operation}) rewrote the day"
    return None


@dataclass
class BarsRefresh:
    """The minutes a bars refresh rebuilt: how many, and the span [start, end) Gold has to rebuild for them (None:
    none) — they and, per series, the next bar after them (whose completeness counts from their last trade id)."""

    minutes: int
    start: datetime | None
    end: datetime | None


def _after_next_bars(spark: SparkSession, low: datetime, high: datetime) -> datetime:
    """The end of the minute of the latest "next bar" (within a day, as the completeness model looks back) after
    each touched series' last refreshed minute."""
    on = " AND ".join(f"b.{c} = t.{c}" for c in ("exchange", "market", "symbol"))
    row = spark.sql(
        f"""
        SELECT unix_micros(max(next_minute)) AS next_minute FROM (
            SELECT min(b.minute) AS next_minute
            FROM {SILVER_OHLCV_1M.identifier} b
            JOIN (SELECT exchange, market, symbol, max(minute) AS last FROM silver_bars_touched GROUP BY 1, 2, 3) t
                ON {on} AND b.minute > t.last AND b.minute <= t.last + INTERVAL 1 DAY
            WHERE b.minute >= {sql_timestamp(high)} AND b.minute < {sql_timestamp(high + ONE_DAY)}
            GROUP BY b.exchange, b.market, b.symbol
        )
        """
    ).first()
    return high if row["next_minute"] is None else _utc(row["next_minute"]) + ONE_MINUTE


def refresh_bars_day(spark: SparkSession, day: datetime, built_from: int, now: int) -> BarsRefresh:
    """Rebuild the bars of the minutes of ``day`` that received Silver trades in (built_from, now]."""
    if built_from == now:
        return BarsRefresh(0, None, None)
    start, end = day, day + ONE_DAY
    appended = (
        spark.read.format("iceberg")
        .option("start-snapshot-id", str(built_from))
        .option("end-snapshot-id", str(now))
        .load(SILVER_TRADES.identifier)
    )
    appended.createOrReplaceTempView("silver_trades_appended")
    touched = spark.sql(
        f"""
        SELECT DISTINCT exchange, market, symbol, date_trunc('MINUTE', trade_time) AS minute
        FROM silver_trades_appended
        WHERE trade_time >= {sql_timestamp(start)} AND trade_time < {sql_timestamp(end)}
        """
    ).cache()
    touched.createOrReplaceTempView("silver_bars_touched")
    try:
        span = touched.selectExpr(
            "count(*) AS minutes", "unix_micros(min(minute)) AS low", "unix_micros(max(minute)) AS high"
        ).first()
        if not span["minutes"]:
            return BarsRefresh(0, None, None)
        low, high = _utc(span["low"]), _utc(span["high"]) + ONE_MINUTE
        bars = spark.sql(bars_query(low, high, now, "silver_bars_touched"))
        merge_window(
            spark,
            SILVER_OHLCV_1M,
            bars,
            BAR_KEY,
            None,
            "silver_ohlcv_1m_refresh",
            compare=BAR_VALUES,
            touch="built_at",
            target_filter=f"t.minute >= {sql_timestamp(low)} AND t.minute < {sql_timestamp(high)}",
        )
        return BarsRefresh(int(span["minutes"]), low, max(high, _after_next_bars(spark, low, high)))
    finally:
        spark.catalog.dropTempView("silver_bars_touched")
        spark.catalog.dropTempView("silver_trades_appended")
        touched.unpersist()
