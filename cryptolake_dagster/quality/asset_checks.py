"""What every blocking Soda asset check shares: the partition's rows to scan and the check result of a scan."""

from __future__ import annotations

import dagster as dg

from cryptolake.utc import sql_time_window
from cryptolake_dagster.quality.soda_scan import SodaOutcome


def soda_check_result(outcome: SodaOutcome) -> dg.AssetCheckResult:
    """A blocking (ERROR) check result with every Soda check's outcome and the failed ones as metadata."""
    return dg.AssetCheckResult(
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "checks": dg.MetadataValue.json(outcome.checks),
            "failed": dg.MetadataValue.text(", ".join(outcome.failed_checks) or "none"),
        },
    )


def partition_filter(context: dg.AssetCheckExecutionContext, column: str) -> str:
    """SQL condition: ``column`` in the time window of the partition being checked."""
    # Checks run inside the partitioned run that materialized the asset; use its partition window.
    start, end = context.op_execution_context.partition_time_window
    return sql_time_window(column, start, end)
