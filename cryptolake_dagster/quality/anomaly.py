"""A check with a memory: a day's row count against the trailing median of the counts recorded before it.

The history is quality.check_results: the row count this check recorded for each earlier day of the table (the
latest record per day, so a re-run after a fix supersedes the first one). A day whose count is more than
``max_ratio`` times above or below the median of the days recorded in the ``trailing_days`` calendar days before
it, ``[d - N, d)``, is reported (WARN: it never blocks); days recorded long before (another backfill years ago) are
no trailing history. With fewer than ``min_history`` recorded days in that window the check passes and says so. Each day of the run's
window is judged (a ranged run judges its days in order, each one joining the history of the next) and recorded as
its own row, so the history grows by one row per day and run.

Dagster module: no ``from __future__ import annotations`` (Dagster reads the check's parameter annotations).
"""

import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from cryptolake.logging import get_logger
from cryptolake.utc import sql_time_window
from cryptolake_dagster.quality.asset_checks import (
    CheckEvaluation,
    Window,
    partition_window,
    recorded_check_result,
)
from cryptolake_dagster.quality.results import FAILED, PASSED, CheckRecord, recorded_row_counts
from cryptolake_dagster.resources import IcebergCatalogResource, LakehouseSparkResource

log = get_logger(__name__)


@dataclass(frozen=True)
class RowCountAnomalySpec:
    asset_key: dg.AssetKey
    table: str  # identifier, e.g. gold.fct_ohlcv_1h
    time_column: str  # the column that places a row in a UTC day
    trailing_days: int = 7
    min_history: int = 3
    max_ratio: float = 2.0

    @property
    def check_name(self) -> str:
        return "row_count_anomaly_" + self.table.replace(".", "_")

    @property
    def description(self) -> str:
        return (
            f"A day's rows of {self.table} within {self.max_ratio:g}x of the median of the days recorded "
            f"(quality.check_results) in the {self.trailing_days} calendar days before it; passes with fewer than "
            f"{self.min_history} of them"
        )


def day_row_counts(spark: SparkSession, table: str, time_column: str, window: Window) -> dict[str, int]:
    """Rows per UTC day of ``window`` (every day of it, 0 where there is none), keyed by ISO date."""
    start, end = window
    counted = (
        spark.table(table)
        .where(sql_time_window(time_column, start, end))
        .groupBy(F.to_date(F.col(time_column)).alias("day"))
        .count()
        .collect()
    )
    by_day = {row["day"].isoformat(): int(row["count"]) for row in counted}
    days: list[date] = []
    day = start.date()
    while day < end.date() or not days:
        days.append(day)
        day += timedelta(days=1)
    return {d.isoformat(): by_day.get(d.isoformat(), 0) for d in days}


def judge_day(spec: RowCountAnomalySpec, day: str, rows: int, history: dict[str, int]) -> dict[str, Any]:
    """The figures of one day: its rows, the days recorded in its trailing calendar window, their median, the bounds
    and the verdict."""
    first = (date.fromisoformat(day) - timedelta(days=spec.trailing_days)).isoformat()
    previous = [(d, n) for d, n in sorted(history.items()) if first <= d < day]
    figures: dict[str, Any] = {
        "day": day,
        "row_count": rows,
        "history_days": len(previous),
        "history": [{"day": d, "row_count": n} for d, n in previous],
    }
    if len(previous) < spec.min_history:
        return {
            **figures,
            "passed": True,
            "trailing_median": None,
            "reason": f"too little history: {len(previous)} recorded day(s) in [{first}, {day}), "
            f"{spec.min_history} needed",
        }
    median = float(statistics.median(n for _, n in previous))
    lower, upper = median / spec.max_ratio, median * spec.max_ratio
    passed = lower <= rows <= upper
    verdict = "within" if passed else "outside"
    return {
        **figures,
        "passed": passed,
        "trailing_median": median,
        "lower_bound": lower,
        "upper_bound": upper,
        "reason": f"{rows} rows on {day}: {verdict} [{lower:g}, {upper:g}] around the trailing median {median:g} "
        f"of {len(previous)} day(s)",
    }


def evaluate_row_count_anomaly(
    spark: SparkSession, iceberg: IcebergCatalogResource, spec: RowCountAnomalySpec, window: Window | None
) -> CheckEvaluation:
    if window is None:
        raise ValueError(
            f"{spec.check_name} judges days: run it in a partitioned run of {spec.asset_key.to_user_string()} "
            "(a day or a range of days)"
        )
    try:
        history = recorded_row_counts(iceberg.catalog(), spec.check_name, spec.asset_key.to_user_string())
        history_error = None
    except Exception as error:  # a WARN check with no readable history passes and says why
        log.warning("row_count_history_unreadable", check=spec.check_name, error=str(error))
        history, history_error = {}, f"{type(error).__name__}: {error}"
    days = []
    for day, rows in day_row_counts(spark, spec.table, spec.time_column, window).items():
        figures = judge_day(spec, day, rows, history)
        if history_error:
            figures["history_error"] = history_error
        days.append(figures)
        history[day] = rows  # the next day of a ranged run compares with this one too
    anomalous = [d["day"] for d in days if not d["passed"]]
    metadata: dict[str, Any] = (
        {key: value for key, value in days[0].items() if key not in ("passed", "day")}
        if len(days) == 1
        else {"days": days, "row_count": sum(d["row_count"] for d in days)}
    )
    metadata["anomalous_days"] = ", ".join(anomalous) or "none"
    return CheckEvaluation(
        passed=not anomalous,
        metadata=metadata,
        row_count=sum(d["row_count"] for d in days),
        failed_checks=anomalous,
        per_partition=days,
    )


def day_records(evaluation: CheckEvaluation, base: dict[str, Any]) -> list[CheckRecord]:
    """One quality.check_results row per judged day: the history the next runs read."""
    return [
        CheckRecord(
            **{**base, "partition_key": day["day"]},
            outcome=PASSED if day["passed"] else FAILED,
            row_count=day["row_count"],
            failed_checks=() if day["passed"] else (day["day"],),
            metric_values=day,
        )
        for day in evaluation.per_partition
    ]


def build_row_count_anomaly_check(spec: RowCountAnomalySpec) -> dg.AssetChecksDefinition:
    """The non-blocking (WARN) row-count anomaly check of ``spec``."""

    @dg.asset_check(asset=spec.asset_key, name=spec.check_name, blocking=False, description=spec.description)
    def row_count_anomaly(
        context: dg.AssetCheckExecutionContext, pyspark: LakehouseSparkResource, iceberg: IcebergCatalogResource
    ) -> dg.AssetCheckResult:
        return recorded_check_result(
            context,
            iceberg,
            check_type="row_count_anomaly",
            description=spec.description,
            severity=dg.AssetCheckSeverity.WARN,
            blocking=False,
            evaluate=lambda: evaluate_row_count_anomaly(
                pyspark.spark_session, iceberg, spec, partition_window(context)
            ),
            records=day_records,
        )

    return row_count_anomaly
