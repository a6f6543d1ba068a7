"""The alerts sensors.

* ``run_failure_alerts`` (a run-failure sensor): appends each failed run to quality.alerts (job, run id, partition or
  range, the error, the time), records what the run materialized before failing in quality.asset_runs, and POSTs
  the alert to the webhook. A failed append fails the evaluation, so Dagster evaluates the run again; a failed POST
  is only logged.
* ``run_success_asset_runs`` (a run-status sensor on SUCCESS): records each run's materializations in
  quality.asset_runs, the "last run of each asset" of ``/api/v1/pipeline/freshness`` (the API may not import
  Dagster, so it reads the instance's facts from this table).
* ``quality_alerts_webhook`` (every minute, only with a webhook URL): POSTs the check results recorded since its
  cursor that failed or warned, and each layer that became stale; on its first evaluation it posts the layers
  stale then and no older check results. Cursor: JSON ``{"checked_at": newest seen, "stale": [layers]}``.

The run-status sensors watch every run of the instance (``monitor_all_code_locations``): the runs ``cryptolake
backfill`` executes in its own process have no code-location origin, and a sensor watching only its own location
would never see them.
"""

import json
from datetime import UTC, datetime

import dagster as dg
from pyiceberg.expressions import GreaterThan

from cryptolake.pipeline_status import check_alert, layer_freshness, newest_time, run_failure_alert, stale_alert
from cryptolake.tables import QUALITY_ALERTS, QUALITY_ASSET_RUNS, QUALITY_CHECK_RESULTS
from cryptolake_dagster.defs.alerts.records import append, asset_run_rows, failure_row, run_end_time
from cryptolake_dagster.defs.alerts.webhook import AlertingResource
from cryptolake_dagster.resources import IcebergCatalogResource


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Each failed run: a row of quality.alerts, its materializations in quality.asset_runs, and a POST "
    "to CRYPTOLAKE_ALERT_WEBHOOK_URL when it is set.",
)
def run_failure_alerts(
    context: dg.RunFailureSensorContext, iceberg: IcebergCatalogResource, alerting: AlertingResource
) -> None:
    run = context.dagster_run
    row = failure_row(run, context.failure_event.message, context.get_step_failure_events(),
                      run_end_time(context.instance, run.run_id))  # fmt: skip
    catalog = iceberg.catalog()
    append(catalog, QUALITY_ALERTS, [row])
    append(catalog, QUALITY_ASSET_RUNS, asset_run_rows(context.instance, run, "FAILURE"))
    context.log.info(f"run {run.run_id} of {run.job_name} failed: recorded in {QUALITY_ALERTS.identifier}")
    alerting.post([run_failure_alert(row).payload()], context.log)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_success_asset_runs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=True,
    description="Each successful run's materializations (asset, partition or range, time) in quality.asset_runs.",
)
def run_success_asset_runs(context: dg.RunStatusSensorContext, iceberg: IcebergCatalogResource) -> None:
    rows = asset_run_rows(context.instance, context.dagster_run, "SUCCESS")
    append(iceberg.catalog(), QUALITY_ASSET_RUNS, rows)
    if rows:
        context.log.info(f"run {context.dagster_run.run_id}: {len(rows)} asset(s) in {QUALITY_ASSET_RUNS.identifier}")


@dg.sensor(
    name="quality_alerts_webhook",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="POSTs failed and warning check results (quality.check_results) and newly stale layers to "
    "CRYPTOLAKE_ALERT_WEBHOOK_URL; skips when it is not set.",
)
def quality_alerts_webhook(
    context: dg.SensorEvaluationContext, iceberg: IcebergCatalogResource, alerting: AlertingResource
) -> dg.SensorResult:
    if not alerting.webhook_url:
        return dg.SensorResult(skip_reason=dg.SkipReason("CRYPTOLAKE_ALERT_WEBHOOK_URL is not set"))
    cursor = json.loads(context.cursor) if context.cursor else None
    catalog = iceberg.catalog()
    table = catalog.load_table(QUALITY_CHECK_RESULTS.identifier)
    since = cursor["checked_at"] if cursor else None
    payloads = []
    if cursor is None:  # the first evaluation starts after the newest result (file metadata): no history posted
        newest = newest_time(table, "checked_at")
    else:
        scan = table.scan(row_filter=GreaterThan("checked_at", since)) if since else table.scan()
        rows = scan.to_arrow().to_pylist()
        newest = max((row["checked_at"] for row in rows), default=None)
        found = [alert for alert in map(check_alert, rows) if alert is not None]
        payloads.extend(alert.payload() for alert in sorted(found, key=lambda a: (a.raised_at, a.alert_id)))
    was_stale = set(cursor["stale"]) if cursor else set()
    layers = layer_freshness(catalog, datetime.now(UTC), alerting.stale_after_s)
    stale_now = set()
    for freshness in layers:
        alert = stale_alert(freshness, alerting.stale_after_s)
        if alert is None:
            continue
        stale_now.add(freshness.layer.layer)
        if freshness.layer.layer not in was_stale:
            payloads.append(alert.payload())
    posted = alerting.post(payloads, context.log)
    next_cursor = {"checked_at": newest.isoformat() if newest is not None else since, "stale": sorted(stale_now)}
    context.log.info(f"{len(payloads)} new alert(s), {posted} accepted by the webhook; stale: {sorted(stale_now)}")
    return dg.SensorResult(cursor=json.dumps(next_cursor))
