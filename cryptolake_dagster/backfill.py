"""Backfill a range of days of a partitioned job from the command line (``cryptolake backfill``), with progress.

The days are run as **ranged runs**: one Dagster run spans many consecutive daily partitions (Dagster's partition
range tags; the assets see the whole range in ``context.partition_time_window``). How many days a run may span is
what the job's assets allow, their ``BackfillPolicy``, as for a backfill launched in the UI:

* ``silver_gold_daily``: any number (``cryptolake_dagster.partitions.ranged_backfill_policy``), so by default the
  whole range is one run. The Silver assets rebuild it day by day inside the run, skipping the days without data
  from Iceberg metadata, and dbt builds once over the whole range: five years are one run instead of 1,826.
* ``batch_sources_daily``: one day per run. Its assets fetch every day from HTTP APIs anyway (one request per coin
  and day, rate-limited), so a range would save little, and a failed day stays a failed day to retry.

``days_per_run`` cuts a range into shorter runs (checkpoints, a progress line each). Runs execute one after another
in this process against the platform's Dagster instance (every run, its materializations and its check results
show in the UI like any other run), in date order. A line after each run gives its days, the outcome, what was
materialized, the days done out of the total, the share and the ETA; during a run of several days a line per
finished step shows how far it is.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster_shared.serdes import serialize_value
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

from cryptolake.logging import get_logger
from cryptolake.progress import Progress, format_duration

log = get_logger(__name__)

BACKFILL_TAG = "cryptolake/backfill"
#: Dagster's tags of a ranged run (first and last partition key of the range, inclusive).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
#: Dagster's console logger at WARNING: the progress lines are the output; ``--dagster-logs`` shows everything.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


#: Events of one batch written in one transaction: a ranged run's materializations of an asset (one per day).
EVENT_BATCH_SIZE = 5_000


class BackfillEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, the same files and schema, as a backfill's process writes it.

    A ranged run records every asset's materialization for every day of its range: for years, tens of thousands of
    events. Dagster's SQLite storage opens a new SQLAlchemy engine and connection for every statement (about 20 ms
    an event here); this one keeps one connection per database file (about 6 ms). It also records one *planned*
    event per asset for a ranged run instead of one per day, as Dagster does with
    ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` set: the days of a failed ranged run then keep their
    previous status in the UI instead of showing "failed"; the run itself shows failed, and the backfill names its
    days. A ranged output's per-day materializations are written in one transaction per database (Dagster's event
    batches, ``DAGSTER_EVENT_BATCH_SIZE``), and a check's per-day planned rows with its event serialized once.
    Other processes (webserver, daemon) read and write the same files as usual; between statements this process
    holds no lock.
    """

    #: Open engines kept (the index and the latest runs' databases); the least recently used is closed first.
    MAX_OPEN_SHARDS = 8

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> BackfillEventLogStorage:  # type: ignore[override]
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True

    def has_table(self, table_name: str) -> bool:
        # Asked for every materialization; a table, once there, stays.
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = create_engine(
                    self.conn_string_for_shard(shard),
                    pool_size=1,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
                )
                event.listen(engine, "connect", _relaxed_sync)
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                self._engines[shard] = engine
                while len(self._engines) > self.MAX_OPEN_SHARDS:
                    self._engines.popitem(last=False)[1].dispose()
            self._engines.move_to_end(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A batch (one asset's materializations of every day of a ranged run, see :func:`batched_events`) in one
        transaction per database instead of two per event; the rows are those ``store_event`` writes."""
        run_ids = {entry.run_id for entry in events}
        if len(run_ids) != 1 or not all(
            entry.is_dagster_event and entry.dagster_event_type in ASSET_EVENTS for entry in events
        ):
            super().store_event_batch(events)
            return
        statements = [self.prepare_insert_event(entry) for entry in events]
        with self.run_connection(run_ids.pop()) as conn:
            for statement in statements:
                conn.execute(statement)
        with self.index_transaction() as conn:
            event_ids = []
            for statement in statements:
                with db_result(conn, statement) as result:
                    event_ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, events, event_ids)
            for entry, event_id in zip(events, event_ids, strict=True):
                self._store_asset_event(conn, entry, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Dagster's rows (one per day of the run), with the event serialized once rather than once per day."""
        planned = event.get_dagster_event().event_specific_data
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]  # type: ignore[union-attr]
        common = {
            "asset_key": planned.asset_key.to_string(),  # type: ignore[union-attr]
            "check_name": planned.check_name,  # type: ignore[union-attr]
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**common, "partition": key} for key in keys])

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
    """WAL with ``synchronous=NORMAL``: a commit no longer waits for the disk (no fsync per event); the database
    stays consistent, and a power cut can only lose the last events, which a re-run of the days writes again."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def backfill_instance(dagster_home: Path) -> dg.DagsterInstance:
    """The Dagster instance of ``dagster_home`` (its ``dagster.yaml``) for a backfill: when its event log is
    Dagster's default SQLite one, it is written through :class:`BackfillEventLogStorage` (same files); any other
    storage (Postgres in the cluster profile) is used as configured."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    storage = instance.event_log_storage
    if type(storage) is not SqliteEventLogStorage:
        return instance
    base_dir = storage._base_dir  # where the default storage keeps the run and index databases
    instance.dispose()
    # Dagster hands a ranged output's per-day materializations to store_event_batch only with a batch size set
    # (read at every event; 0, the default, writes them one by one).
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))
    event_log = {"module": __name__, "class": BackfillEventLogStorage.__name__, "config": {"base_dir": base_dir}}
    return dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(dagster_home), overrides={"event_log_storage": event_log})
    )


class BackfillError(ValueError):
    """The request cannot be run (unknown job, not partitioned, dates outside the partitions, bad run size)."""


@dataclass
class RunOutcome:
    """One run of the backfill: the days it spanned and what came of it."""

    first: str
    last: str
    days: int
    success: bool
    run_id: str
    seconds: float
    materialized: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0
    failed_checks: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        return self.first if self.days == 1 else f"{self.first} .. {self.last} ({self.days} days)"

    def summary(self) -> str:
        if not self.success:
            failed = f" (failed checks: {', '.join(self.failed_checks)})" if self.failed_checks else ""
            return f"{self.label} FAILED in {self.seconds:.1f} s (run {self.run_id[:8]}): {self.error}{failed}"
        checks = f", {self.checks_passed} checks passed" if self.checks_passed or self.checks_failed else ""
        if self.checks_failed:
            checks += f", checks FAILED: {', '.join(self.failed_checks)}"
        days = "" if self.days == 1 else f" x {self.days} days"
        return (
            f"{self.label} ok in {self.seconds:.1f} s (run {self.run_id[:8]}): "
            f"{len(self.materialized)} assets{days} materialized{checks}"
        )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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


def max_days_per_run(job: dg.JobDefinition) -> tuple[int | None, str | None]:
    """The most partitions one run of ``job`` may span, and the asset that sets the bound: the tightest backfill
    policy of its assets (an asset without a policy runs one partition per run, Dagster's default). ``None``: the
    whole range may be one run."""
    bound: tuple[int | None, str | None] = (None, None)
    for key in sorted(job.asset_layer.selected_asset_keys):
        policy = job.asset_layer.asset_graph.get(key).backfill_policy
        limit = 1 if policy is None else policy.max_partitions_per_run
        if limit is not None and (bound[0] is None or limit < bound[0]):
            bound = (limit, key.to_user_string())
    return bound


def run_ranges(keys: list[str], days_per_run: int) -> list[list[str]]:
    """``keys`` cut into consecutive runs of at most ``days_per_run`` keys."""
    return [keys[i : i + days_per_run] for i in range(0, len(keys), days_per_run)]


def _days_per_run(job: dg.JobDefinition, requested: int | None, total: int) -> int:
    bound, asset = max_days_per_run(job)
    if requested is None:
        return min(bound or total, total)
    if requested < 1:
        raise BackfillError(f"--days-per-run {requested}: a run spans at least 1 day")
    if bound is not None and requested > bound:
        raise BackfillError(
            f"--days-per-run {requested}: a run of {job.name} spans at most {bound} day{'s' if bound != 1 else ''} "
            f"(the backfill policy of {asset}); choose 1 .. {bound}, or leave it out"
        )
    return min(requested, total)


def _outcome(keys: list[str], result: dg.ExecuteInProcessResult, seconds: float) -> RunOutcome:
    materialized = sorted({event.asset_key.to_user_string() for event in result.get_asset_materialization_events()})
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
    return RunOutcome(
        first=keys[0],
        last=keys[-1],
        days=len(keys),
        success=result.success,
        run_id=result.run_id,
        seconds=seconds,
        materialized=materialized,
        checks_passed=sum(1 for check in checks if check.passed),
        checks_failed=sum(1 for check in checks if not check.passed),
        failed_checks=[check.asset_check_key.name for check in checks if not check.passed],
        error=error,
    )


def _step_reporter(progress: Progress, label: str, steps: int) -> Callable[[Any], None]:
    """An event listener printing a line for each finished step of a run (``label``: its days)."""
    started = time.monotonic()
    finished = 0

    def report(entry: Any) -> None:
        nonlocal finished
        event = entry.dagster_event
        if event is None or event.event_type not in (
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
        ):
            return
        finished += 1
        outcome = "ok" if event.event_type == dg.DagsterEventType.STEP_SUCCESS else "FAILED"
        progress.emit(
            f"  {label}: step {finished}/{steps} {event.step_key} {outcome} "
            f"(run at {format_duration(time.monotonic() - started)})"
        )

    return report


def _execute(
    job: dg.JobDefinition,
    keys: list[str],
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    quiet: bool,
    progress: Progress,
) -> dg.ExecuteInProcessResult:
    """One run of ``job`` for ``keys``: a plain partition run for one day, a ranged run for several (with a line
    per finished step: a ranged run can take long)."""
    run_config = QUIET_RUN_CONFIG if quiet else None
    if len(keys) == 1:
        return job.execute_in_process(
            partition_key=keys[0], instance=instance, raise_on_error=False, tags=tags, run_config=run_config
        )
    run_id = str(uuid.uuid4())
    steps = len(job.graph.nodes)
    instance.add_event_listener(run_id, _step_reporter(progress, f"{keys[0]} .. {keys[-1]}", steps))
    tags = {**tags, RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}
    return job.execute_in_process(
        instance=instance, raise_on_error=False, tags=tags, run_config=run_config, run_id=run_id
    )


def run_backfill(
    defs: dg.Definitions | Callable[[], dg.Definitions],
    job_name: str,
    start: str,
    end: str,
    instance: dg.DagsterInstance,
    *,
    days_per_run: int | None = None,
    fail_fast: bool = False,
    dagster_logs: bool = False,
    stream: TextIO | None = None,
) -> list[RunOutcome]:
    """Run ``job_name`` over the days ``start`` .. ``end`` as ranged runs; print a progress line per run.

    ``defs``: the definitions (``cryptolake_dagster.definitions.build_definitions(settings)``), or a function that
    returns them, such as the code location's lazy ``cryptolake_dagster.definitions.defs``. ``days_per_run``: the
    most days one run spans (default: as many as the job's assets' backfill policies allow, the whole range for
    ``silver_gold_daily``).
    """
    if not isinstance(defs, dg.Definitions):
        defs = defs()
    job = resolve_partitioned_job(defs, job_name)
    keys = partition_keys(job, start, end)
    size = _days_per_run(job, days_per_run, len(keys))
    ranges = run_ranges(keys, size)
    backfill_id = uuid.uuid4().hex[:8]
    progress = Progress(f"backfill {job_name}", total=len(keys), unit="days", stream=stream)
    runs = "one run per day" if size == 1 else f"{_plural(len(ranges), 'run')} of up to {size} days"
    progress.emit(f"backfill {job_name} {backfill_id}: {_plural(len(keys), 'day')}, {keys[0]} .. {keys[-1]}, {runs}")
    outcomes: list[RunOutcome] = []
    for run_keys in ranges:
        started = time.monotonic()
        result = _execute(job, run_keys, instance, {BACKFILL_TAG: backfill_id}, not dagster_logs, progress)
        outcome = _outcome(run_keys, result, time.monotonic() - started)
        outcomes.append(outcome)
        log.info(
            "backfill run done",
            job=job_name,
            first=outcome.first,
            last=outcome.last,
            days=outcome.days,
            success=outcome.success,
            run_id=result.run_id,
        )
        # The progress counts days: a run of N days advances it by N.
        if outcome.success:
            progress.done += outcome.days - 1
        else:
            progress.failed += outcome.days - 1
        progress.step(outcome.summary(), ok=outcome.success)
        if not outcome.success and fail_fast:
            progress.emit(f"backfill {job_name}: stopped after the first failed run (--fail-fast)")
            break
    failed = [o for o in outcomes if not o.success]
    days_ok = sum(o.days for o in outcomes if o.success)
    days_failed = sum(o.days for o in failed)
    not_run = len(keys) - days_ok - days_failed
    tally = f"{days_ok} days ok, {days_failed} failed" + (f", {not_run} not run" if not_run else "")
    retry = f"; failed: {', '.join(o.label for o in failed)} (re-run those days with --from/--to)" if failed else ""
    progress.emit(
        f"backfill {job_name} {backfill_id} finished in {progress.elapsed_s:.0f} s: "
        f"{tally} ({_plural(len(outcomes), 'run')}){retry}"
    )
    return outcomes
