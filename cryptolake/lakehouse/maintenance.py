"""Iceberg table maintenance: compaction, manifest rewrite, snapshot expiry and orphan-file removal, per table.

Minute-by-minute commits (the Bronze writer, the sensor's Silver runs) leave a file per partition per commit, a
manifest per commit and a snapshot per commit; every reader pays for them. :func:`maintain_table` runs, with the
platform's Spark session and Iceberg's Spark procedures (the runtime jar brings the SQL extensions):

1. ``rewrite_data_files`` (bin-pack): the small files of each partition rewritten into files of the target size;
2. ``rewrite_manifests``: one manifest per partition range instead of one per commit;
3. ``expire_snapshots``: snapshots older than the retention removed, except what must stay (below);
4. ``remove_orphan_files``: files no snapshot references, older than a safe age (at least 24 h).

What expiry keeps, besides every snapshot of the retention window (time travel: the API's ``as_of``): the lineage
back to each snapshot given in ``keep_snapshot_ids`` (the Bronze sensor's cursor: ``days_added_since`` walks from
the current snapshot back to it) and back to the newest snapshot carrying the Bronze writer's Kafka offsets (the
writer resumes from them; a compaction snapshot carries none). Every step is an ordinary optimistic Iceberg commit:
a concurrent append (the Bronze writer) is retried by whichever commits second, never lost; a step that fails
validation against a concurrent commit (Spark's appends merge manifests) changed nothing and is run again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table as IcebergTable

from cryptolake.broker import OFFSETS_PROPERTY_PREFIX
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import PlatformSetupError, spark_conf
from cryptolake.logging import get_logger
from cryptolake.settings import Settings
from cryptolake.tables import ALL_TABLE_IDENTIFIERS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)

_MIB = 1024 * 1024
#: Iceberg's exceptions for a commit that lost to a concurrent one, and how often a step is tried.
CONFLICT_MARKERS = ("ValidationException", "CommitFailedException")
CONFLICT_ATTEMPTS = 5
_ICEBERG_EXTENSIONS = "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"


@dataclass(frozen=True)
class MaintenancePolicy:
    """How maintenance treats a table (``CRYPTOLAKE_MAINTENANCE_*``)."""

    snapshot_retention: timedelta = timedelta(hours=24)
    orphan_older_than: timedelta = timedelta(hours=72)
    target_file_size_bytes: int = 128 * _MIB
    min_input_files: int = 5
    retain_last: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> MaintenancePolicy:
        return cls(
            snapshot_retention=timedelta(hours=settings.maintenance_snapshot_retention_h),
            orphan_older_than=timedelta(hours=settings.maintenance_orphan_older_than_h),
            target_file_size_bytes=settings.maintenance_target_file_mb * _MIB,
            min_input_files=settings.maintenance_min_input_files,
        )


@dataclass(frozen=True)
class TableState:
    """What a table's current metadata holds (pyiceberg's view of the catalog)."""

    snapshot_id: int | None
    snapshots: int
    data_files: int
    data_bytes: int
    records: int
    manifests: int
    partitions: int
    max_files_per_partition: int


@dataclass(frozen=True)
class MaintenanceResult:
    """One table's maintenance: its state before and after, and what each step did."""

    table: str
    before: TableState
    after: TableState
    rewritten_data_files: int = 0
    added_data_files: int = 0
    rewritten_bytes: int = 0
    rewritten_manifests: int = 0
    added_manifests: int = 0
    expired_snapshots: int = 0
    deleted_files: int = 0
    orphan_files_removed: int = 0
    expired_older_than: datetime | None = None
    kept_snapshot_ids: tuple[int, ...] = ()
    seconds: float = 0.0
    step_seconds: tuple[tuple[str, float], ...] = ()  # (step, seconds) of each procedure run

    def metadata(self) -> dict[str, int | float | str]:
        """Flat key/values for logs and Dagster metadata: ``files_before``, ``files_after``, ... and the steps."""
        flat: dict[str, int | float | str] = {}
        for name, value in asdict(self.before).items():
            flat[f"{name}_before"] = -1 if value is None else value
        for name, value in asdict(self.after).items():
            flat[f"{name}_after"] = -1 if value is None else value
        for name in ("rewritten_data_files", "added_data_files", "rewritten_bytes", "rewritten_manifests",
                     "added_manifests", "expired_snapshots", "deleted_files", "orphan_files_removed"):  # fmt: skip
            flat[name] = getattr(self, name)
        flat["expired_older_than"] = self.expired_older_than.isoformat() if self.expired_older_than else ""
        flat["kept_snapshot_ids"] = ",".join(str(i) for i in self.kept_snapshot_ids)
        flat["seconds"] = round(self.seconds, 2)
        for step, seconds in self.step_seconds:
            flat[f"seconds_{step}"] = round(seconds, 2)
        return flat


def table_state(table: IcebergTable) -> TableState:
    """Snapshots, live data files (count, bytes, records, per partition) and manifests of ``table`` now."""
    snapshot = table.current_snapshot()
    snapshots = len(table.metadata.snapshots)
    if snapshot is None:
        return TableState(None, snapshots, 0, 0, 0, 0, 0, 0)
    files = table.inspect.data_files(snapshot_id=snapshot.snapshot_id)
    per_partition = Counter(
        repr(sorted(p.items())) if p else "" for p in files.column("partition").to_pylist()
    ) if "partition" in files.column_names else Counter({"": files.num_rows})  # fmt: skip
    return TableState(
        snapshot_id=snapshot.snapshot_id,
        snapshots=snapshots,
        data_files=files.num_rows,
        data_bytes=int(sum(files.column("file_size_in_bytes").to_pylist())),
        records=int(sum(files.column("record_count").to_pylist())),
        manifests=len(snapshot.manifests(table.io)),
        partitions=len(per_partition) if files.num_rows else 0,
        max_files_per_partition=max(per_partition.values(), default=0) if files.num_rows else 0,
    )


def protected_snapshots(table: IcebergTable, keep_snapshot_ids: Iterable[int] = ()) -> dict[int, int]:
    """Snapshot id -> timestamp (ms) of the snapshots expiry must keep with their whole lineage up to now: those of
    ``keep_snapshot_ids`` still in the table, and per Kafka-offsets summary property the newest snapshot of the
    current lineage carrying it."""
    kept = {
        snapshot.snapshot_id: snapshot.timestamp_ms
        for snapshot in (table.snapshot_by_id(i) for i in keep_snapshot_ids)
        if snapshot is not None
    }
    seen: set[str] = set()
    snapshot = table.current_snapshot()
    while snapshot is not None:
        properties = snapshot.summary.additional_properties if snapshot.summary else {}
        new = {key for key in properties if key.startswith(OFFSETS_PROPERTY_PREFIX)} - seen
        if new:
            kept[snapshot.snapshot_id] = snapshot.timestamp_ms
            seen |= new
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return kept


def _timestamp_literal(moment: datetime) -> str:
    """A Spark SQL TIMESTAMP literal (procedures take literals only), millisecond precision, explicit UTC."""
    return f"TIMESTAMP '{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}+00:00'"


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def attach_catalog(spark: SparkSession, settings: Settings) -> None:
    """Make sure ``spark`` reaches the settings' catalog as pyiceberg does (same name, URI, warehouse, cache off).

    The catalog tables are created by pyiceberg first (a SQLite JdbcCatalog must not create them itself); a
    session built by ``build_spark_session`` for these settings already has every property. A session built for
    another lakehouse gets the catalog added under its name; one holding a *different* configuration of that name
    is refused rather than silently maintained through the wrong catalog.
    """
    get_catalog(settings)
    if _ICEBERG_EXTENSIONS not in (spark.conf.get("spark.sql.extensions", None) or ""):
        raise PlatformSetupError("the Spark session lacks the Iceberg SQL extensions (build it with spark_conf)")
    prefix = f"spark.sql.catalog.{settings.catalog_name}"
    for key, value in spark_conf(settings).items():
        if key != prefix and not key.startswith(prefix + "."):
            continue
        current = spark.conf.get(key, None)
        if current is None:
            spark.conf.set(key, value)
        elif current != value:
            raise PlatformSetupError(f"the Spark session has {key}={current!r}, the settings want {value!r}")


def maintain_table(
    spark: SparkSession,
    catalog: Catalog,
    catalog_name: str,
    identifier: str,
    policy: MaintenancePolicy | None = None,
    keep_snapshot_ids: Iterable[int] = (),
    now: datetime | None = None,
) -> MaintenanceResult:
    """Compact, rewrite manifests, expire snapshots and remove orphan files of one table (see the module doc).

    ``catalog`` is pyiceberg's view of the Spark catalog ``catalog_name`` (see :func:`attach_catalog`);
    ``identifier`` is ``namespace.name``. A table without a snapshot is left alone.
    """
    policy = policy or MaintenancePolicy()
    started = time.monotonic()
    table = catalog.load_table(identifier)
    before = table_state(table)
    if before.snapshot_id is None:
        return MaintenanceResult(identifier, before, before, seconds=time.monotonic() - started)
    procedure = f"{catalog_name}.system"
    counts: dict[str, int] = {}
    steps: list[tuple[str, float]] = []

    def call(step: str, sql: str) -> list:
        """Run a procedure; a conflict with a concurrent commit (its plan is stale: e.g. an append that merged the
        manifests being rewritten) changed nothing, so the step is planned and run again on the new snapshot."""
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            began = time.monotonic()
            try:
                rows = spark.sql(f"CALL {procedure}.{sql}").collect()
            except Exception as exc:
                reason = next((marker for marker in CONFLICT_MARKERS if marker in str(exc)), None)
                if reason is None or attempt == CONFLICT_ATTEMPTS:
                    raise
                log.warning("maintenance_step_conflict", table=identifier, step=step, attempt=attempt, reason=reason)
                time.sleep(0.5 * attempt)
                continue
            steps.append((step, time.monotonic() - began))
            return rows
        raise AssertionError("unreachable")

    rewrite = call(
        "compact",
        f"rewrite_data_files(table => '{identifier}', strategy => 'binpack', options => map("
        f"'min-input-files', '{policy.min_input_files}', "
        f"'target-file-size-bytes', '{policy.target_file_size_bytes}', "
        "'partial-progress.enabled', 'true'))",
    )[0]
    counts["rewritten_data_files"] = int(rewrite["rewritten_data_files_count"])
    counts["added_data_files"] = int(rewrite["added_data_files_count"])
    counts["rewritten_bytes"] = int(rewrite["rewritten_bytes_count"])

    table = table.refresh()
    current = table.current_snapshot()
    if current is not None and len(current.manifests(table.io)) > 1:
        manifests = call("manifests", f"rewrite_manifests(table => '{identifier}', use_caching => false)")[0]
        counts["rewritten_manifests"] = int(manifests["rewritten_manifests_count"])
        counts["added_manifests"] = int(manifests["added_manifests_count"])

    now = now or datetime.now(UTC)
    table = table.refresh()
    kept = protected_snapshots(table, keep_snapshot_ids)
    older_than = min([now - policy.snapshot_retention, *(_from_ms(ms) for ms in kept.values())])
    snapshots_before = {snapshot.snapshot_id for snapshot in table.snapshots()}
    expired = call(
        "expire",
        f"expire_snapshots(table => '{identifier}', older_than => {_timestamp_literal(older_than)}, "
        f"retain_last => {policy.retain_last})",
    )[0]
    counts["deleted_files"] = sum(int(value or 0) for value in expired.asDict().values())
    table = table.refresh()
    counts["expired_snapshots"] = len(snapshots_before - {snapshot.snapshot_id for snapshot in table.snapshots()})

    orphans = call(
        "orphans",
        f"remove_orphan_files(table => '{identifier}', "
        f"older_than => {_timestamp_literal(now - policy.orphan_older_than)})",
    )
    counts["orphan_files_removed"] = len(orphans)

    result = MaintenanceResult(
        identifier,
        before,
        table_state(table.refresh()),
        expired_older_than=older_than,
        kept_snapshot_ids=tuple(sorted(kept)),
        seconds=time.monotonic() - started,
        step_seconds=tuple(steps),
        **counts,
    )
    log.info("table_maintained", table=identifier, **{k: v for k, v in result.metadata().items() if k != "table"})
    return result


def existing_tables(catalog: Catalog, identifiers: Sequence[str] = ALL_TABLE_IDENTIFIERS) -> list[str]:
    """The tables of ``identifiers`` (default: every table of the lakehouse) that exist in ``catalog``."""
    return [identifier for identifier in identifiers if catalog.table_exists(identifier)]


def maintain_tables(
    spark: SparkSession,
    settings: Settings,
    policy: MaintenancePolicy | None = None,
    identifiers: Sequence[str] | None = None,
    keep_snapshot_ids: Mapping[str, Iterable[int]] | None = None,
) -> list[MaintenanceResult]:
    """:func:`maintain_table` over every existing table (or those of ``identifiers``), one after the other.

    ``policy`` defaults to the settings'; ``keep_snapshot_ids`` maps a table to snapshots whose lineage expiry
    must keep (e.g. ``bronze.trades`` -> the Bronze sensor's cursor).
    """
    attach_catalog(spark, settings)
    catalog = get_catalog(settings)
    policy = policy or MaintenancePolicy.from_settings(settings)
    keep = keep_snapshot_ids or {}
    return [
        maintain_table(spark, catalog, settings.catalog_name, identifier, policy, keep.get(identifier, ()))
        for identifier in existing_tables(catalog, identifiers or ALL_TABLE_IDENTIFIERS)
    ]
