"""Spark writes that replace a window of an Iceberg table in ONE commit, for every batch writer of the lakehouse.

* Day-partitioned tables rebuilt whole: :func:`overwrite_window` — ``DataFrameWriterV2.overwrite(condition)``:
  Iceberg deletes the files of the window's partitions and adds the new ones in one ``overwrite`` snapshot (the
  condition must align with day partitions).
* Tables updated in place: :func:`merge_window`, the one MERGE builder — updates (only changed rows, with
  ``compare``) and inserts the window's rows and deletes the window's rows the source no longer has
  (``WHEN NOT MATCHED BY SOURCE``).

``snapshot_properties`` are written into the commit's snapshot summary (the orchestrator tags its runs that way).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cryptolake.tables import Table

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table as IcebergTable
    from pyspark.sql import DataFrame, SparkSession


def column_names(table: Table) -> list[str]:
    return [column.name for column in table.schema.columns]


def rows_frame(spark: SparkSession, table: Table, rows: Iterable[dict[str, Any]]) -> DataFrame:
    """A DataFrame with the table's exact Spark schema from dicts keyed by column name."""
    schema = spark.table(table.identifier).schema
    names = schema.fieldNames()
    return spark.createDataFrame([tuple(row[name] for name in names) for row in rows], schema=schema)


def overwrite_window(
    spark: SparkSession,
    table: Table,
    frame: DataFrame,
    condition: str,
    snapshot_properties: Mapping[str, str] | None = None,
) -> None:
    """Replace the rows matching ``condition`` (aligned with the table's day partitions) by ``frame``."""
    from pyspark.sql import functions as F

    writer = frame.writeTo(table.identifier)
    for key, value in (snapshot_properties or {}).items():
        writer = writer.option(f"snapshot-property.{key}", value)
    writer.overwrite(F.expr(condition))


def merge_window(
    spark: SparkSession,
    table: Table,
    frame: DataFrame,
    keys: Sequence[str],
    window_condition: str | None,
    view: str,
    *,
    compare: Sequence[str] | None = None,
    touch: str | None = None,
    target_filter: str | None = None,
) -> None:
    """MERGE ``frame`` into ``table`` on ``keys``; target rows (alias ``t``) matching ``window_condition`` that are
    missing from ``frame`` are deleted (None: nothing is deleted, and only the target files that hold a key of
    ``frame`` are rewritten). ``target_filter`` (on ``t``) joins the ON condition: Iceberg prunes the target's files
    by it.

    ``compare``: update only rows where one of these columns changed (null-safe), leaving others untouched; then
    ``touch`` (a timestamp column) is set to ``current_timestamp()`` on update and insert. Without ``compare``
    every matched row is replaced.
    """
    frame.createOrReplaceTempView(view)
    on = " AND ".join([*(f"t.{key} = s.{key}" for key in keys), *([target_filter] if target_filter else [])])
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
        {f"WHEN NOT MATCHED BY SOURCE AND {window_condition} THEN DELETE" if window_condition else ""}
        """
    )
    spark.catalog.dropTempView(view)


def replace_rows(
    table: IcebergTable, rows: pa.Table, where: BooleanExpression, snapshot_properties: Mapping[str, str]
) -> None:
    """Replace the rows of ``table`` matching ``where`` by ``rows`` in one pyiceberg commit (the importers' write).

    pyiceberg warns when nothing matched (a first import); that is the normal case here, not worth a warning.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        table.overwrite(rows, overwrite_filter=where, snapshot_properties=dict(snapshot_properties))
