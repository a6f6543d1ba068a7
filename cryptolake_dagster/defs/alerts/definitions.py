"""The alerts domain: the run-failure and run-success sensors (quality.alerts, quality.asset_runs), the webhook
sensor of check and staleness alerts, and the ``alerting`` resource (webhook URL and timeout, staleness limit)."""

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.alerts.records import alerts_asset, asset_runs_asset
from cryptolake_dagster.defs.alerts.sensors import quality_alerts_webhook, run_failure_alerts, run_success_asset_runs
from cryptolake_dagster.defs.alerts.webhook import AlertingResource


def defs(settings: Settings) -> dg.Definitions:
    """The sensors also use the shared ``iceberg`` resource."""
    return dg.Definitions(
        assets=[alerts_asset, asset_runs_asset],
        sensors=[run_failure_alerts, run_success_asset_runs, quality_alerts_webhook],
        resources={"alerting": AlertingResource.from_settings(settings)},
    )
