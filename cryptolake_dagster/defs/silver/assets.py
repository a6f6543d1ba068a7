"""Silver assets built with Spark from Bronze, day by day: one UTC day per partition, one or many days per run.

``silver/trades`` (+ ``silver/trades_quarantine``, same op) -> ``silver/ohlcv_1m``.

**A run of one day refreshes it** (``refresh``): Silver reads only the Bronze rows appended since the snapshot the
day's last commit marked (``increments``) and appends their trades; the bars of the minutes those trades fall in
are rebuilt; Gold then rebuilds only those minutes' bars and days (``cryptolake_dagster.refreshes``). When reading
the increment could not give the table a full rebuild gives (a later copy of a trade Silver holds, a changed
backfill table, a mark that left the lineage, ...), the day is rebuilt in full instead, with the reason in the log.

**A full rebuild** (a ranged run, a backfill, a run tagged ``lake/refresh=full``, or a refresh's fallback):

* ``silver.trades``: **overwrite by day** — one Iceberg ``overwrite`` commit replaces the day partition with the
  day's deduplicated, cleaned trades, read from Bronze pinned at the snapshots the commit marks. Writing the day
  whole is cheaper than a MERGE (which would join the day with itself), and the content is a pure function of
  Bronze: an unchanged re-run writes identical rows (no build-time column).
* ``silver.trades_quarantine``: **MERGE** on the Bronze row key (kafka_topic, kafka_partition, kafka_offset): new
  rejects are inserted, changed ones updated, rows of the day no longer rejected deleted; ``quarantined_at`` only
  moves when a row's values or reason change, so an unchanged re-run leaves identical content. Skipped when the
  day has no rejects now and had none before.
* ``silver.ohlcv_1m``: MERGE of the day's bars (see ``ohlcv_sql``).

**Ranged runs** (a backfill: ``context.partition_time_window`` spans many days, see
``cryptolake_dagster.partitions``): both assets loop over the days of the window and do exactly what a run of that
one day does, so a range gives the same tables as one run per day, with one day's data in Spark at a time (memory
stays that of a day). A day whose inputs and outputs have no data file at all is skipped, decided from Iceberg
metadata only (one scan planning per table for the whole window): five years of mostly empty days take seconds.
Skipping changes nothing, since rebuilding such a day writes nothing and deletes nothing.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.transforms import DayTransform
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from cryptolake.lakehouse.writes import merge_window, overwrite_window
from cryptolake.tables import ALL_TABLES, SILVER_OHLCV_1M, SILVER_TRADES, SILVER_TRADES_QUARANTINE, Table
from cryptolake.utc import EPOCH, as_utc, sql_time_window
from cryptolake_dagster.asset_keys import (
    SILVER_TRADES_INPUTS,
    SILVER_TRADES_KEY,
    SILVER_TRADES_QUARANTINE_KEY,
)
from cryptolake_dagster.defs.silver.increments import BronzeState, current_bronze_state, day_mark, why_not_incremental
from cryptolake_dagster.defs.silver.ohlcv_sql import BAR_KEY, BAR_VALUES, bars_query
from cryptolake_dagster.defs.silver.refresh import (
    due_future_trades,
    refresh_bars_day,
    refresh_trades_day,
    why_rebuild_all_bars,
)
from cryptolake_dagster.defs.silver.trades_sql import (
    BRONZE_ROW_KEY,
    FUTURE_TOLERANCE,
    MAX_BROADCAST_DUPLICATES,
    QUARANTINE_COLUMNS,
    checked_query,
    duplicates_query,
    quarantine_query,
    silver_query,
    sorted_silver_query,
)
from cryptolake_dagster.partitions import ranged_backfill_policy
from cryptolake_dagster.refreshes import (
    BARS_BUILT_FROM,
    REFRESHED_FROM,
    REFRESHED_TO,
    bars_built_from,
    full_rebuild_reason,
)
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource
from cryptolake_dagster.run_snapshots import run_snapshot, run_snapshot_properties, snapshot_id
from cryptolake_dagster.table_assets import daily_table_asset_kwargs, daily_table_spec_kwargs

SILVER_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2), warn_window=timedelta(minutes=30))
ONE_DAY = timedelta(days=1)


# --- the days of a window, and which of them have data (Iceberg metadata only) -----------------------------------


def days_of(start: datetime, end: datetime) -> list[datetime]:
    """The UTC midnights of the days in the window [start, end) (the daily partitions' windows are aligned)."""
    day, end = as_utc(start), as_utc(end)
    days = []
    while day < end:
        days.append(day)
        day += ONE_DAY
    return days


def tables_read_by(query: str) -> list[Table]:
    """The registered tables whose identifier ``query`` names: what a day's Silver build reads, from its SQL."""
    return [table for table in ALL_TABLES if re.search(rf"(?<![\w.]){re.escape(table.identifier)}(?![\w.])", query)]


def _day_field_position(spec: PartitionSpec, source_id: int) -> int | None:
    """Where in a data file's partition tuple ``spec`` keeps the day of column ``source_id`` (None: it does not)."""
    for position, spec_field in enumerate(spec.fields):
        if spec_field.source_id == source_id and isinstance(spec_field.transform, DayTransform):
            return position
    return None


def days_with_data(catalog: Catalog, tables: Iterable[Table], start: datetime, end: datetime) -> set[date]:
    """The UTC days in [start, end) in which any of the day-partitioned ``tables`` has a data file.

    Metadata only: one scan planning per table (manifests pruned by the window), no data file is read. A table
    that is not partitioned by day (or a file written under another spec) counts as having data every day.
    """
    window_days = {day.date() for day in days_of(start, end)}
    found: set[date] = set()
    for table in tables:
        column = table.partition_source
        if column is None:
            return window_days
        iceberg = catalog.load_table(table.identifier)
        source_id = iceberg.schema().find_field(column).field_id
        positions = {spec_id: _day_field_position(spec, source_id) for spec_id, spec in iceberg.specs().items()}
        window = And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, end.isoformat()))
        for task in iceberg.scan(row_filter=window, selected_fields=(column,)).plan_files():
            position = positions.get(task.file.spec_id)
            if position is None:
                return window_days
            found.add((EPOCH + timedelta(days=int(task.file.partition[position]))).date())
    return found & window_days


def _rows_added(catalog: Catalog, table: Table, run_id: str, previous: int | None) -> tuple[int, int | None]:
    """Records added by this run's newest commit to ``table`` if it is newer than ``previous`` (the snapshot id of
    the run's commit before), with its id: what the day just written added (0 when the write committed nothing)."""
    snapshot = run_snapshot(catalog.load_table(table.identifier), run_id)
    if snapshot is None or snapshot.snapshot_id == previous:
        return 0, previous
    summary = snapshot.summary
    return (int(summary["added-records"] or 0) if summary else 0), snapshot.snapshot_id


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- silver/trades (+ quarantine) --------------------------------------------------------------------------------


@dataclass
class TradesDay:
    """What rebuilding one day of silver.trades did."""

    bronze_rows: int
    quarantined: int
    rows: int
    deduplication: str  # broadcast | sort (a full rebuild) | increment (a refresh)


def _replace_trades_day(
    spark: SparkSession,
    catalog: Catalog,
    day: datetime,
    latest: datetime,
    run_id: str,
    state: BronzeState,
    quarantine_had_rows: bool,
    previous_snapshot: int | None,
    log: dg.DagsterLogManager,
) -> tuple[TradesDay, int | None]:
    """Replace one day of silver.trades from Bronze as of ``state`` (the commit marks it), and MERGE its rejects
    into the quarantine."""
    start, end = day, day + ONE_DAY
    checked = spark.sql(checked_query(start, end, latest, (state.trades, state.backfill)))
    checked.createOrReplaceTempView("silver_trades_checked")
    # The rows whose natural key occurs more than once (usually few): found without sorting the day's rows.
    duplicates = spark.sql(duplicates_query("silver_trades_checked")).cache()
    duplicates.createOrReplaceTempView("silver_trades_duplicates")
    # Counted while the overwrite reads Bronze (no extra scan of the day).
    bronze_stats = Observation(f"silver_trades_bronze_{day:%Y%m%d}")
    checked.observe(
        bronze_stats, F.count(F.lit(1)).alias("bronze_rows"), F.count_if(F.col("reason").isNotNull()).alias("rejected")
    ).createOrReplaceTempView("silver_trades_checked_observed")
    try:
        duplicate_rows = duplicates.count()
        broadcast = duplicate_rows <= MAX_BROADCAST_DUPLICATES
        log.info(
            f"overwriting [{start}, {end}) of {SILVER_TRADES.identifier} from Bronze "
            f"({duplicate_rows} rows with a duplicated key, deduplicated by {'broadcast' if broadcast else 'sort'})"
        )
        silver = (
            silver_query("silver_trades_checked_observed", "silver_trades_duplicates")
            if broadcast
            else sorted_silver_query("silver_trades_checked_observed")
        )
        overwrite_window(
            spark,
            SILVER_TRADES,
            spark.sql(silver),
            sql_time_window("trade_time", start, end),
            {**run_snapshot_properties(run_id), **state.properties(day.date())},
        )
        counts = bronze_stats.get  # waits for the overwrite's metrics; empty if Spark reported none
        if "bronze_rows" not in counts:
            counts = spark.sql(
                "SELECT count(*) AS bronze_rows, count_if(reason IS NOT NULL) AS rejected FROM silver_trades_checked"
            ).first()
        bronze_rows, quarantined = int(counts["bronze_rows"]), int(counts["rejected"])
        if quarantined or quarantine_had_rows:
            merge_window(
                spark,
                SILVER_TRADES_QUARANTINE,
                spark.sql(quarantine_query("silver_trades_checked")),
                BRONZE_ROW_KEY,
                sql_time_window("t.trade_time", start, end),
                "silver_trades_quarantine_batch",
                compare=[column for column in QUARANTINE_COLUMNS if column not in BRONZE_ROW_KEY],
                touch="quarantined_at",
            )
    finally:
        spark.catalog.dropTempView("silver_trades_checked_observed")
        spark.catalog.dropTempView("silver_trades_duplicates")
        spark.catalog.dropTempView("silver_trades_checked")
        duplicates.unpersist()
    rows, snapshot = _rows_added(catalog, SILVER_TRADES, run_id, previous_snapshot)
    return TradesDay(bronze_rows, quarantined, rows, "broadcast" if broadcast else "sort"), snapshot


@dg.multi_asset(
    name="silver_trades",
    specs=[
        dg.AssetSpec(
            **daily_table_spec_kwargs(
                SILVER_TRADES, "silver", freshness=SILVER_FRESHNESS, metadata={"write": "overwrite by day"}
            ),
            deps=SILVER_TRADES_INPUTS,
        ),
        dg.AssetSpec(
            **daily_table_spec_kwargs(
                SILVER_TRADES_QUARANTINE,
                "silver",
                freshness=SILVER_FRESHNESS,
                metadata={"write": "merge on the Bronze row key"},
            ),
            deps=SILVER_TRADES_INPUTS,
        ),
    ],
    backfill_policy=ranged_backfill_policy,
)
def silver_trades(context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource):
    """Each day's Bronze trades, cleaned and deduplicated (rules in ``trades_sql``); rejects to quarantine. A run of
    one day refreshes it from the Bronze rows appended since its last commit; a ranged run replaces its days one
    after the other and skips the days without any Bronze or Silver data file."""
    start, end = context.partition_time_window
    latest = datetime.now(UTC) + FUTURE_TOLERANCE  # one wall clock for the whole run
    spark = pyspark.spark_session
    catalog = iceberg.catalog()
    run_id = context.run.run_id
    days = days_of(start, end)
    bronze = tables_read_by(checked_query(start, end, latest))
    quarantine_days = days_with_data(catalog, [SILVER_TRADES_QUARANTINE], start, end)
    # A day is rebuilt when Bronze has trades for it, or Silver has rows of it (which Bronze no longer backs).
    with_data = days_with_data(catalog, [*bronze, SILVER_TRADES], start, end) | quarantine_days
    todo = [day for day in days if day.date() in with_data]
    context.log.info(
        f"{_plural(len(days), 'day')} in [{start}, {end}): {len(todo)} with data in "
        f"{', '.join(t.identifier for t in [*bronze, SILVER_TRADES, SILVER_TRADES_QUARANTINE])}, rebuilt day by day; "
        f"{len(days) - len(todo)} without any data file, skipped"
    )
    done: list[TradesDay] = []
    new_trades_span: dict[str, dg.MetadataValue] = {}  # a refresh's new trades: their checks scan only these minutes
    snapshot: int | None = None
    state = current_bronze_state(catalog)  # every day of the run reads Bronze as of these snapshots
    rebuild_because = full_rebuild_reason(context)
    for day in todo:
        why = rebuild_because
        if why is None:
            mark = day_mark(catalog.load_table(SILVER_TRADES.identifier), day.date())
            why = why_not_incremental(catalog, mark, state, day.date())
            if why is None and (due := due_future_trades(catalog, day, latest)):
                why = f"{due} quarantined future trade(s) are due"
            if why is None and mark is not None:
                increment = refresh_trades_day(spark, catalog, day, latest, run_id, mark, state)
                why = increment.full_rebuild_because
                if why is None:
                    done.append(TradesDay(increment.bronze_rows, increment.quarantined, increment.rows, "increment"))
                    if increment.start is not None and increment.end is not None and len(todo) == 1:
                        new_trades_span = {
                            REFRESHED_FROM: dg.MetadataValue.text(increment.start.isoformat()),
                            REFRESHED_TO: dg.MetadataValue.text(increment.end.isoformat()),
                        }
                    snapshot = catalog.load_table(SILVER_TRADES.identifier).current_snapshot().snapshot_id
                    context.log.info(
                        f"{day:%Y-%m-%d}: refreshed from the Bronze rows appended since snapshot "
                        f"{mark.state.trades}: {increment.bronze_rows} Bronze rows, {increment.rows} new Silver "
                        f"trades, {increment.quarantined} quarantined"
                    )
                    continue
        context.log.info(f"{day:%Y-%m-%d}: rebuilt in full ({why})")
        result, snapshot = _replace_trades_day(
            spark, catalog, day, latest, run_id, state, day.date() in quarantine_days, snapshot, context.log
        )
        done.append(result)
        context.log.info(
            f"{day:%Y-%m-%d}: {result.rows} Silver trades ({result.bronze_rows - result.quarantined - result.rows} "
            f"duplicates collapsed), {result.quarantined} quarantined"
        )
    rows = sum(d.rows for d in done)
    bronze_rows = sum(d.bronze_rows for d in done)
    quarantined = sum(d.quarantined for d in done)
    reasons: dict[str, int] = {}
    if quarantined:
        counts = spark.sql(
            f"SELECT reason, count(*) AS rows FROM {SILVER_TRADES_QUARANTINE.identifier} "
            f"WHERE {sql_time_window('trade_time', start, end)} GROUP BY reason"
        )
        reasons = {row["reason"]: int(row["rows"]) for row in counts.collect()}
    plans = {d.deduplication for d in done}
    deduplication = ", ".join(
        f"{plan} ({sum(d.deduplication == plan for d in done)} days)" if len(plans) > 1 else plan
        for plan in sorted(plans)
    )
    duplicates = bronze_rows - quarantined - rows
    context.log.info(f"{rows} Silver trades ({duplicates} duplicates collapsed), {quarantined} quarantined")
    days_metadata = {
        "days": dg.MetadataValue.int(len(days)),
        "days_rebuilt": dg.MetadataValue.int(sum(d.deduplication != "increment" for d in done)),
        "days_refreshed": dg.MetadataValue.int(sum(d.deduplication == "increment" for d in done)),
    }
    yield dg.MaterializeResult(
        asset_key=SILVER_TRADES_KEY,
        metadata={
            "rows": dg.MetadataValue.int(rows),
            "bronze_rows": dg.MetadataValue.int(bronze_rows),
            "duplicates_collapsed": dg.MetadataValue.int(duplicates),
            "quarantined": dg.MetadataValue.int(quarantined),
            "deduplication": dg.MetadataValue.text(deduplication),
            **days_metadata,
            **new_trades_span,
            "iceberg_snapshot_id": dg.MetadataValue.text(str(snapshot) if snapshot is not None else "none"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=SILVER_TRADES_QUARANTINE_KEY,
        metadata={
            "rows": dg.MetadataValue.int(quarantined),
            "reasons": dg.MetadataValue.json(reasons),
            "future_tolerance_s": dg.MetadataValue.int(int(FUTURE_TOLERANCE.total_seconds())),
            **days_metadata,
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(catalog, SILVER_TRADES_QUARANTINE)),
        },
    )


# --- silver/ohlcv_1m ---------------------------------------------------------------------------------------------


@dg.asset(
    **daily_table_asset_kwargs(
        SILVER_OHLCV_1M, "silver", freshness=SILVER_FRESHNESS, backfill_policy=ranged_backfill_policy
    ),
    deps=[SILVER_TRADES_KEY],
)
def silver_ohlcv_1m(
    context: dg.AssetExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
) -> dg.MaterializeResult:
    """1-minute bars from silver.trades, day by day (MERGE: re-runs converge). A run of one day rebuilds the bars
    of the minutes that received Silver trades since its last materialization; a ranged run rebuilds every bar of
    its days and skips the days without any Silver trade or bar data file."""
    start, end = context.partition_time_window
    spark = pyspark.spark_session
    catalog = iceberg.catalog()
    days = days_of(start, end)
    with_data = days_with_data(catalog, [SILVER_TRADES, SILVER_OHLCV_1M], start, end)
    todo = [day for day in days if day.date() in with_data]
    context.log.info(
        f"{_plural(len(days), 'day')} in [{start}, {end}): {len(todo)} with Silver trades or bars, rebuilt day by "
        f"day; {len(days) - len(todo)} without any, skipped"
    )
    bar_count = 0
    symbols: set[str] = set()
    silver = catalog.load_table(SILVER_TRADES.identifier).current_snapshot()
    built_from = None if silver is None else silver.snapshot_id  # every day's bars read silver.trades as of it
    rebuild_because = full_rebuild_reason(context)
    refreshed: dict[str, dg.MetadataValue] = {}
    previous = bars_built_from(context.instance, context.partition_key) if rebuild_because is None else None
    for day in todo:
        why = rebuild_because or why_rebuild_all_bars(catalog, day, previous, built_from)
        if why is None and previous is not None and built_from is not None:
            refresh = refresh_bars_day(spark, day, previous, built_from)
            context.log.info(
                f"{day:%Y-%m-%d}: refreshed the bars of {refresh.minutes} minutes that received Silver trades "
                f"since snapshot {previous}" + (f", in [{refresh.start}, {refresh.end})" if refresh.start else "")
            )
            if refresh.start is not None and refresh.end is not None:
                refreshed = {
                    REFRESHED_FROM: dg.MetadataValue.text(refresh.start.isoformat()),
                    REFRESHED_TO: dg.MetadataValue.text(refresh.end.isoformat()),
                }
            refreshed["minutes_refreshed"] = dg.MetadataValue.int(refresh.minutes)
            continue
        context.log.info(f"{day:%Y-%m-%d}: every bar rebuilt ({why})")
        bars = spark.sql(bars_query(day, day + ONE_DAY, built_from)).cache()
        # One aggregate stage over the cached bars (count(DISTINCT) would add an AQE stage and job).
        stats = bars.selectExpr("count(*) AS bars", "collect_set(symbol) AS symbols").first()
        day_bars = int(stats["bars"])  # after the MERGE the day holds exactly these
        context.log.info(f"merging {day_bars} bars for {day:%Y-%m-%d} into {SILVER_OHLCV_1M.identifier}")
        try:
            merge_window(
                spark,
                SILVER_OHLCV_1M,
                bars,
                BAR_KEY,
                sql_time_window("t.minute", day, day + ONE_DAY),
                "silver_ohlcv_1m_batch",
                compare=BAR_VALUES,
                touch="built_at",
            )
        finally:
            bars.unpersist()
        bar_count += day_bars
        symbols.update(stats["symbols"])
    return dg.MaterializeResult(
        metadata={
            "bars": dg.MetadataValue.int(bar_count),
            "symbols": dg.MetadataValue.int(len(symbols)),
            "days": dg.MetadataValue.int(len(days)),
            "days_rebuilt": dg.MetadataValue.int(len(todo) - ("minutes_refreshed" in refreshed)),
            **refreshed,
            BARS_BUILT_FROM: dg.MetadataValue.text(str(built_from) if built_from is not None else "none"),
            "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(catalog, SILVER_OHLCV_1M)),
        }
    )
