"""``table_maintenance``: compaction, manifest rewrite, snapshot expiry and orphan removal of every table, with
each table's files, bytes, snapshots and manifests before and after as an observation of its asset."""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorType

from cryptolake.lakehouse.maintenance import MaintenancePolicy, MaintenanceResult, maintain_tables
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES
from cryptolake_dagster.defs.bronze.sensors import bronze_trades_sensor
from cryptolake_dagster.resources import LakehouseSparkResource

JOB_NAME = "table_maintenance"


class MaintenanceResource(dg.ConfigurableResource):
    """The maintenance policy (``CRYPTOLAKE_MAINTENANCE_*``)."""

    snapshot_retention_h: float = 24.0
    orphan_older_than_h: float = 72.0
    target_file_mb: int = 128
    min_input_files: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> "MaintenanceResource":
        return cls(
            snapshot_retention_h=settings.maintenance_snapshot_retention_h,
            orphan_older_than_h=settings.maintenance_orphan_older_than_h,
            target_file_mb=settings.maintenance_target_file_mb,
            min_input_files=settings.maintenance_min_input_files,
        )

    def policy(self) -> MaintenancePolicy:
        return MaintenancePolicy(
            snapshot_retention=timedelta(hours=self.snapshot_retention_h),
            orphan_older_than=timedelta(hours=self.orphan_older_than_h),
            target_file_size_bytes=self.target_file_mb * 1024 * 1024,
            min_input_files=self.min_input_files,
        )


def sensor_cursor_snapshots(instance: dg.DagsterInstance) -> list[int]:
    """The snapshot ids of ``bronze.trades`` held in the Bronze sensor's cursor (in any code location)."""
    ids = []
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        cursor = getattr(state.instigator_data, "cursor", None)
        if state.name == bronze_trades_sensor.name and cursor and cursor.lstrip("-").isdigit():
            ids.append(int(cursor))
    return ids


def _observation(result: MaintenanceResult) -> dg.AssetObservation:
    metadata: dict[str, dg.RawMetadataValue] = dict(result.metadata())
    for key in ("snapshot_id_before", "snapshot_id_after"):  # 64-bit ids: text, not a (JavaScript) number
        metadata[key] = dg.MetadataValue.text(str(metadata[key]))
    metadata["files_before"], metadata["files_after"] = result.before.data_files, result.after.data_files
    metadata["bytes_before"], metadata["bytes_after"] = result.before.data_bytes, result.after.data_bytes
    return dg.AssetObservation(asset_key=dg.AssetKey(result.table.split(".")), metadata=metadata)


@dg.op(
    name="maintain_tables",
    description="For every table of the lakehouse that exists: rewrite_data_files (small files of each partition "
    "bin-packed), rewrite_manifests, expire_snapshots (older than the retention, keeping the lineage back to the "
    "Bronze sensor's cursor and to the Bronze writer's last Kafka offsets) and remove_orphan_files (older than "
    "the safe age). Each table's state before and after is an observation of its asset.",
)
def maintain_tables_op(
    context: dg.OpExecutionContext, pyspark: LakehouseSparkResource, maintenance: MaintenanceResource
) -> Iterator[dg.AssetObservation | dg.Output]:
    cursor = sensor_cursor_snapshots(context.instance)
    results = maintain_tables(
        pyspark.spark_session,
        pyspark.lakehouse.settings(),
        maintenance.policy(),
        keep_snapshot_ids={BRONZE_TRADES.identifier: cursor},
    )
    for result in results:
        context.log.info(
            f"{result.table}: files {result.before.data_files} -> {result.after.data_files}, snapshots "
            f"{result.before.snapshots} -> {result.after.snapshots}, manifests {result.before.manifests} -> "
            f"{result.after.manifests}, {result.orphan_files_removed} orphan files removed ({result.seconds:.1f} s)"
        )
        yield _observation(result)
    yield dg.Output(
        None,
        metadata={
            "tables": len(results),
            "files_before": sum(r.before.data_files for r in results),
            "files_after": sum(r.after.data_files for r in results),
            "bytes_before": sum(r.before.data_bytes for r in results),
            "bytes_after": sum(r.after.data_bytes for r in results),
            "snapshots_before": sum(r.before.snapshots for r in results),
            "snapshots_after": sum(r.after.snapshots for r in results),
            "orphan_files_removed": sum(r.orphan_files_removed for r in results),
            "sensor_cursor": dg.MetadataValue.text(",".join(map(str, cursor)) or "none"),
        },
    )


@dg.job(
    name=JOB_NAME,
    executor_def=dg.in_process_executor,
    description="Table maintenance of every table: compaction per partition, manifest rewrite, snapshot expiry "
    "(CRYPTOLAKE_MAINTENANCE_SNAPSHOT_RETENTION_H) and orphan-file removal; never loses a concurrent commit.",
)
def table_maintenance_job() -> None:
    maintain_tables_op()


def table_maintenance_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The job on ``CRYPTOLAKE_MAINTENANCE_CRON`` (UTC), running unless ``CRYPTOLAKE_MAINTENANCE_SCHEDULE_RUNNING``
    is false."""
    running = settings.maintenance_schedule_running
    return dg.ScheduleDefinition(
        name=f"{JOB_NAME}_schedule",
        job=table_maintenance_job,
        cron_schedule=settings.maintenance_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
    )
