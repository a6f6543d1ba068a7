"""The Bronze sensor: new snapshots of bronze.trades -> runs of the Silver/Gold partitions they touched."""

import dagster as dg

from cryptolake.tables import BRONZE_TRADES
from cryptolake_dagster.defs.bronze.changes import days_added_since
from cryptolake_dagster.defs.silver.jobs import silver_gold_daily_job
from cryptolake_dagster.resources import IcebergCatalogResource


@dg.sensor(
    job=silver_gold_daily_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches bronze.trades snapshots; requests the Silver + Gold partitions of every UTC day that "
    "received rows since the cursor (so late trades re-materialize older days). Cursor: last snapshot id seen.",
)
def bronze_trades_sensor(context: dg.SensorEvaluationContext, iceberg: IcebergCatalogResource) -> dg.SensorResult:
    table = iceberg.catalog().load_table(BRONZE_TRADES.identifier)
    current = table.current_snapshot()
    if current is None:
        return dg.SensorResult(skip_reason=dg.SkipReason("bronze.trades has no snapshot yet"))
    since = int(context.cursor) if context.cursor else None
    if since == current.snapshot_id:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"no new snapshot since {since}"))
    days = sorted(days_added_since(table, since))
    # A run that is still waiting in the queue will read Bronze when it starts: it covers the new rows too.
    waiting = _partitions_waiting(context.instance)
    requests = [
        dg.RunRequest(partition_key=day.isoformat(), run_key=f"{day.isoformat()}@{current.snapshot_id}")
        for day in days
        if day.isoformat() not in waiting
    ]
    context.log.info(
        f"bronze.trades snapshot {current.snapshot_id}: days changed since {since}: {[d.isoformat() for d in days]}; "
        f"already queued: {sorted(waiting & {d.isoformat() for d in days})}"
    )
    return dg.SensorResult(run_requests=requests, cursor=str(current.snapshot_id))


def _partitions_waiting(instance: dg.DagsterInstance) -> set[str]:
    records = instance.get_run_records(
        dg.RunsFilter(
            job_name=silver_gold_daily_job.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    return {record.dagster_run.tags.get("dagster/partition", "") for record in records}
