"""Backfill a range of days of a partitioned job from the command line (``cryptolake backfill``), with progress.

One run per daily partition, executed in this process against the platform's Dagster instance (so every run, its
materializations and its Soda check results show in the UI like any other run), in date order, with a progress
line after each day: the outcome, what was materialized, the share done and the ETA.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg

from cryptolake.logging import get_logger
from cryptolake.progress import Progress

log = get_logger(__name__)

BACKFILL_TAG = "cryptolake/backfill"
#: Dagster's console logger at WARNING: the progress lines are the output; ``--dagster-logs`` shows everything.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class BackfillError(ValueError):
    """The request cannot be run (unknown job, not partitioned, dates outside the partitions)."""


@dataclass
class PartitionOutcome:
    partition_key: str
    success: bool
    run_id: str
    seconds: float
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    failed_checks: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> str:
        if not self.success:
            failed = f" (failed checks: {', '.join(self.failed_checks)})" if self.failed_checks else ""
            return f"{self.partition_key} FAILED in {self.seconds:.1f} s (run {self.run_id[:8]}): {self.error}{failed}"
        checks = f", {self.checks_passed} checks passed" if self.checks_passed or self.checks_failed else ""
        if self.checks_failed:
            checks += f", checks FAILED: {', '.join(self.failed_checks)}"
        return (
            f"{self.partition_key} ok in {self.seconds:.1f} s (run {self.run_id[:8]}): "
            f"{len(self.materialized)} assets materialized{checks}"
        )


def resolve_partitioned_job(defs: dg.Definitions, job_name: str) -> dg.JobDefinition:
    names = sorted(
        job.name
        for job in defs.resolve_all_job_defs()
        if job.partitions_def is not None and not job.name.startswith("__")
    )
    if job_name not in names:
        raise BackfillError(f"no partitioned job named {job_name!r}; choose one of: {', '.join(names)}")
    return defs.resolve_job_def(job_name)


def partition_keys(job: dg.JobDefinition, start: str, end: str) -> list[str]:
    """The job's partition keys from ``start`` to ``end`` inclusive, in order; errors say what range exists."""
    partitions = job.partitions_def
    assert partitions is not None
    keys = partitions.get_partition_keys()
    available = f"{keys[0]} .. {keys[-1]}" if keys else "none yet"
    for key in (start, end):
        if key not in keys:
            raise BackfillError(
                f"{key!r} is not a partition of {job.name} (daily UTC partitions, YYYY-MM-DD, available: {available})"
            )
    if start > end:
        raise BackfillError(f"--from {start} is after --to {end}")
    return partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))


def _outcome(key: str, result: dg.ExecuteInProcessResult, seconds: float) -> PartitionOutcome:
    materialized = [event.asset_key.to_user_string() for event in result.get_asset_materialization_events()]
    checks = result.get_asset_check_evaluations()
    error = None
    if not result.success:
        failures = result.get_step_failure_events()
        if failures:
            first = failures[0]
            message = first.step_failure_data.error.message if first.step_failure_data.error else "failed"
            error = f"step {first.step_key}: {' '.join(message.split())[:400]}"
        else:
            error = "run failed before any step (see the run in the Dagster UI)"
    return PartitionOutcome(
        partition_key=key,
        success=result.success,
        run_id=result.run_id,
        seconds=seconds,
        materialized=materialized,
        checks_passed=sum(1 for check in checks if check.passed),
        checks_failed=sum(1 for check in checks if not check.passed),
        failed_checks=[check.asset_check_key.name for check in checks if not check.passed],
        error=error,
    )


def run_backfill(
    defs: dg.Definitions | Callable[[], dg.Definitions],
    job_name: str,
    start: str,
    end: str,
    instance: dg.DagsterInstance,
    *,
    fail_fast: bool = False,
    dagster_logs: bool = False,
    stream: TextIO | None = None,
) -> list[PartitionOutcome]:
    """Run ``job_name`` once per partition from ``start`` to ``end``; print a progress line per partition.

    ``defs``: the definitions (``cryptolake_dagster.definitions.build_definitions(settings)``), or a function that
    returns them, such as the code location's lazy ``cryptolake_dagster.definitions.defs``.
    """
    if not isinstance(defs, dg.Definitions):
        defs = defs()
    job = resolve_partitioned_job(defs, job_name)
    keys = partition_keys(job, start, end)
    backfill_id = uuid.uuid4().hex[:8]
    progress = Progress(f"backfill {job_name}", total=len(keys), unit="days", stream=stream)
    progress.emit(
        f"backfill {job_name} {backfill_id}: {len(keys)} day{'s' if len(keys) != 1 else ''}, {keys[0]} .. {keys[-1]}, one run per day"
    )
    outcomes: list[PartitionOutcome] = []
    for key in keys:
        started = time.monotonic()
        result = job.execute_in_process(
            partition_key=key,
            instance=instance,
            raise_on_error=False,
            tags={BACKFILL_TAG: backfill_id},
            run_config=None if dagster_logs else QUIET_RUN_CONFIG,
        )
        outcome = _outcome(key, result, time.monotonic() - started)
        outcomes.append(outcome)
        log.info("backfill partition done", job=job_name, partition=key, success=outcome.success, run_id=result.run_id)
        progress.step(outcome.summary(), ok=outcome.success)
        if not outcome.success and fail_fast:
            progress.emit(f"backfill {job_name}: stopped after the first failure (--fail-fast)")
            break
    failed = [o.partition_key for o in outcomes if not o.success]
    progress.emit(
        f"backfill {job_name} {backfill_id} finished in {progress.elapsed_s:.0f} s: "
        f"{len(outcomes) - len(failed)} ok, {len(failed)} failed"
        + (f" ({', '.join(failed)}; re-run those days with --from/--to)" if failed else "")
    )
    return outcomes
