"""Spark write helpers of the Silver and batch-source assets: each run replaces its window in ONE Iceberg commit.

* Day-partitioned tables rebuilt whole: ``DataFrameWriterV2.overwrite(condition)`` — Iceberg deletes the files of
  the window's partitions and adds the new ones in one ``overwrite`` snapshot (the condition must align with day
  partitions).
* Tables updated in place (small ones, silver.ohlcv_1m, silver.trades_quarantine): ``merge_window``, the one MERGE
  builder — updates (only changed rows, with ``compare``) and inserts the window's rows and deletes the window's
  rows the source no longer has (``WHEN NOT MATCHED BY SOURCE``).

Snapshots written by a Dagster run carry the summary property ``dagster.run-id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pyiceberg.catalog import Catalog

from cryptolake.tables import Table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

RUN_ID_PROPERTY = "dagster.run-id"


def sql_date(day: date) -> str:
    return f"DATE '{day.isoformat()}'"


def sql_timestamp(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.strftime('%Y-%m-%d %H:%M:%S')}'"


def column_names(table: Table) -> list[str]:
    return [column.name for column in table.schema.columns]


def rows_frame(spark: SparkSession, table: Table, rows: Iterable[dict[str, Any]]) -> DataFrame:
    """A DataFrame with the table's exact Spark schema from dicts keyed by column name."""
    schema = spark.table(table.identifier).schema
    names = schema.fieldNames()
    return spark.createDataFrame([tuple(row[name] for name in names) for row in rows], schema=schema)


def overwrite_window(
    spark: SparkSession, table: Table, frame: DataFrame, condition: str, run_id: str | None = None
) -> None:
    """Replace the rows matching ``condition`` (aligned with the table's day partitions) by ``frame``."""
    from pyspark.sql import functions as F

    writer = frame.writeTo(table.identifier)
    if run_id:
        writer = writer.option(f"snapshot-property.{RUN_ID_PROPERTY}", run_id)
    writer.overwrite(F.expr(condition))


def merge_window(
    spark: SparkSession,
    table: Table,
    frame: DataFrame,
    keys: Sequence[str],
    window_condition: str,
    view: str,
    *,
    compare: Sequence[str] | None = None,
    touch: str | None = None,
) -> None:
    """MERGE ``frame`` into ``table`` on ``keys``; target rows (alias ``t``) matching ``window_condition`` that are
    missing from ``frame`` are deleted.

    ``compare``: update only rows where one of these columns changed (null-safe), leaving others untouched; then
    ``touch`` (a timestamp column) is set to ``current_timestamp()`` on update and insert. Without ``compare``
    every matched row is replaced.
    """
    frame.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{key} = s.{key}" for key in keys)
    columns = column_names(table)
    if compare:
        changed = " OR ".join(f"NOT (t.{column} <=> s.{column})" for column in compare)
        sets = ", ".join(
            f"t.{column} = " + ("current_timestamp()" if column == touch else f"s.{column}")
            for column in columns
            if column not in keys
        )
        values = ", ".join("current_timestamp()" if column == touch else f"s.{column}" for column in columns)
        matched = f"WHEN MATCHED AND ({changed}) THEN UPDATE SET {sets}"
        insert = f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({values})"
    else:
        matched = "WHEN MATCHED THEN UPDATE SET *"
        insert = "WHEN NOT MATCHED THEN INSERT *"
    spark.sql(
        f"""
        MERGE INTO {table.identifier} t
        USING {view} s
        ON {on}
        {matched}
        {insert}
        WHEN NOT MATCHED BY SOURCE AND {window_condition} THEN DELETE
        """
    )
    spark.catalog.dropTempView(view)


def snapshot_id(catalog: Catalog, table: Table, run_id: str | None = None) -> str:
    """The snapshot this run committed (by its ``dagster.run-id`` property), else the table's current one."""
    iceberg_table = catalog.load_table(table.identifier)
    if run_id:
        for snapshot in sorted(iceberg_table.snapshots(), key=lambda s: s.sequence_number or 0, reverse=True):
            summary = snapshot.summary
            if summary is not None and summary[RUN_ID_PROPERTY] == run_id:
                return str(snapshot.snapshot_id)
    current = iceberg_table.current_snapshot()
    return str(current.snapshot_id) if current else "none"
