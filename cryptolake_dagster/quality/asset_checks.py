"""Blocking Soda asset checks built from a small spec, compared with their upstream, recorded in quality.check_results.

A :class:`SodaCheckSpec` names the table, its SodaCL file, the column that places a row in a partition (``None``: the
table is rebuilt whole and scanned whole) and the upstream tables it is built from. :func:`build_soda_check` turns it
into a blocking (ERROR) ``@asset_check`` that, for the run's partition:

* scans the partition's rows with the SodaCL file (unique keys, not-null keys, value ranges, required columns);
* counts the upstream rows of the same time window: a partitioned table has rows iff its upstream has rows (a day
  without Silver bars passes with no Gold rows; a day with Silver bars and no Gold rows fails); a table scanned whole
  has rows if its upstream has rows in the window;
* appends its result to quality.check_results (:mod:`cryptolake_dagster.quality.results`).

Dagster modules: no ``from __future__ import annotations`` here (Dagster reads the check's parameter annotations).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pyspark.sql import DataFrame, SparkSession

from cryptolake.utc import sql_time_window
from cryptolake_dagster.quality.results import (
    ERROR,
    FAILED,
    PASSED,
    CheckRecord,
    record_check_results,
    run_partition_key,
)
from cryptolake_dagster.quality.soda_scan import run_soda_scan
from cryptolake_dagster.refreshes import refreshed_span
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource

Window = tuple[datetime, datetime]


@dataclass(frozen=True)
class Upstream:
    """A table the checked table is built from, and the time column that places its rows in a partition."""

    table: str  # identifier, e.g. silver.ohlcv_1m
    time_column: str
    where: str | None = None  # a further Spark SQL condition, e.g. "`interval` = '1m'"

    def describe(self) -> str:
        return self.table + (f" ({self.where})" if self.where else "")

    def rows(self, spark: SparkSession, window: Window | None) -> int:
        frame = spark.table(self.table)
        if window is not None:
            frame = frame.where(sql_time_window(self.time_column, *window))
        if self.where:
            frame = frame.where(self.where)
        return frame.count()


@dataclass(frozen=True)
class SodaCheckSpec:
    """What a Soda asset check of one table needs; ``view`` is the name its SodaCL file says ``checks for``."""

    asset_key: dg.AssetKey
    table: str  # identifier, e.g. gold.fct_ohlcv_1h
    soda_file: Path
    partition_column: str | None  # None: the table is rebuilt whole, its rows are not in partitions
    upstream: Sequence[Upstream] = ()
    view: str | None = None
    name: str | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def view_name(self) -> str:
        return self.view or self.table.rpartition(".")[2]

    @property
    def check_name(self) -> str:
        return self.name or "soda_" + self.table.replace(".", "_")

    @property
    def row_rule(self) -> str:
        """The upstream row-count rule in words (the name of its entry in the check's results)."""
        upstream = " or ".join(up.describe() for up in self.upstream)
        if self.partition_column is None:
            return f"has rows if {upstream} has rows in the window"
        return f"has rows in the window iff {upstream} has rows in it"

    @property
    def description(self) -> str:
        text = f"Soda scan of {self.soda_file.parent.name}/{self.soda_file.name}"
        return text + (f"; {self.row_rule}" if self.upstream else "")


@dataclass(frozen=True)
class CheckEvaluation:
    """A check's figures before they become a Dagster result and a quality.check_results row."""

    passed: bool
    metadata: dict[str, Any]
    row_count: int | None = None
    failed_checks: Sequence[str] = ()
    errored: bool = False
    #: figures per partition (e.g. per day of a ranged run), for checks that record one row per partition
    per_partition: Sequence[dict[str, Any]] = ()

    @property
    def outcome(self) -> str:
        return ERROR if self.errored else PASSED if self.passed else FAILED


def partition_window(context: dg.AssetCheckExecutionContext) -> Window | None:
    """The time window of the partition (or range of partitions) being checked; ``None`` in an unpartitioned run.

    When the run refreshed the checked asset's day, and its materialization names the minutes it refreshed
    (silver/trades, silver/ohlcv_1m), the window is those minutes: a refresh's check scans what changed, not the
    whole day (a trade's or a bar's key fixes its minute, so duplicates of the refreshed rows are inside it)."""
    # Checks run inside the partitioned run that materialized the asset; use its partition window.
    op = context.op_execution_context
    if not op.has_partitions:
        return None
    if len(op.partition_keys) == 1:
        [spec] = context.check_specs
        span = refreshed_span(context.instance, spec.asset_key, op.partition_key, op.run_id)
        if span is not None:
            return span
    window = op.partition_time_window
    return window.start, window.end


def recorded_check_result(
    context: dg.AssetCheckExecutionContext,
    iceberg: IcebergCatalogResource,
    *,
    check_type: str,
    description: str,
    severity: dg.AssetCheckSeverity,
    blocking: bool,
    evaluate: Callable[[], CheckEvaluation],
    records: Callable[[CheckEvaluation, dict[str, Any]], list[CheckRecord]] | None = None,
) -> dg.AssetCheckResult:
    """Run ``evaluate``, append its result to quality.check_results and return it as the check's result.

    ``records`` builds the rows from the evaluation and the fields every row shares (default: one row for the run's
    partition). An exception is recorded as outcome ``error`` and raised again: the check step fails, which blocks
    downstream as a failure does.
    """
    [spec] = context.check_specs  # one check per definition (build_soda_check, the anomaly check)
    base = {
        "check_name": spec.name,
        "asset_key": spec.asset_key.to_user_string(),
        "partition_key": run_partition_key(context),
        "severity": severity.value,
        "blocking": blocking,
        "check_type": check_type,
        "description": description,
        "run_id": context.op_execution_context.run_id,
    }
    try:
        evaluation = evaluate()
    except Exception as error:
        metric_values = {"error": f"{type(error).__name__}: {error}"[:2000]}
        error_record = CheckRecord(outcome=ERROR, metric_values=metric_values, **base)
        record_check_results(iceberg.catalog, [error_record], context.log)
        raise
    rows = (records or _one_record)(evaluation, base)
    record_check_results(iceberg.catalog, rows, context.log)
    return dg.AssetCheckResult(
        passed=evaluation.passed and not evaluation.errored, severity=severity, metadata=evaluation.metadata
    )


def _one_record(evaluation: CheckEvaluation, base: dict[str, Any]) -> list[CheckRecord]:
    return [
        CheckRecord(
            outcome=evaluation.outcome,
            row_count=evaluation.row_count,
            failed_checks=evaluation.failed_checks,
            metric_values=evaluation.metadata,
            **base,
        )
    ]


def _scan_frame(spark: SparkSession, spec: SodaCheckSpec, window: Window | None) -> DataFrame:
    frame = spark.table(spec.table)
    if spec.partition_column is not None and window is not None:
        frame = frame.where(sql_time_window(spec.partition_column, *window))
    return frame


def evaluate_soda_spec(spark: SparkSession, spec: SodaCheckSpec, window: Window | None) -> CheckEvaluation:
    """Scan the window's rows of ``spec.table`` with its SodaCL file and compare their count with the upstream."""
    frame = _scan_frame(spark, spec, window)
    rows = frame.count()
    outcome = run_soda_scan(frame, spec.view_name, spec.soda_file, spec.check_name)
    checks = list(outcome.checks)
    upstream_rows: dict[str, int] = {}
    rule_passed = True
    if spec.upstream:
        upstream_rows = {up.describe(): up.rows(spark, window) for up in spec.upstream}
        upstream_has_rows = any(count > 0 for count in upstream_rows.values())
        if spec.partition_column is None:
            rule_passed = rows > 0 or not upstream_has_rows
        else:
            rule_passed = (rows > 0) == upstream_has_rows
        checks.append(
            {
                "name": spec.row_rule,
                "outcome": "pass" if rule_passed else "fail",
                "value": rows,
                "upstream_rows": upstream_rows,
            }
        )
    failed = [*outcome.failed_checks, *([] if rule_passed else [spec.row_rule])]
    metadata: dict[str, Any] = {
        "rows": rows,
        "checks": checks,
        "failed": ", ".join(failed) or "none",
        **({"upstream_rows": upstream_rows} if spec.upstream else {}),
        **({"window": f"[{window[0].isoformat()}, {window[1].isoformat()})"} if window is not None else {}),
        **({"soda_errors": outcome.errors} if outcome.errors else {}),
        **spec.extra_metadata,
    }
    return CheckEvaluation(
        passed=outcome.passed and rule_passed,
        metadata=metadata,
        row_count=rows,
        failed_checks=failed,
        errored=outcome.errored,
    )


def build_soda_check(spec: SodaCheckSpec) -> dg.AssetChecksDefinition:
    """The blocking Soda asset check of ``spec`` (see the module docstring)."""

    @dg.asset_check(asset=spec.asset_key, name=spec.check_name, blocking=True, description=spec.description)
    def soda_check(
        context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
    ) -> dg.AssetCheckResult:
        return recorded_check_result(
            context,
            iceberg,
            check_type="soda",
            description=spec.description,
            severity=dg.AssetCheckSeverity.ERROR,
            blocking=True,
            evaluate=lambda: evaluate_soda_spec(pyspark.spark_session, spec, partition_window(context)),
        )

    return soda_check
