"""The maintenance domain: the ``table_maintenance`` job over every table, its daily schedule and the
``maintenance`` resource (the policy from the settings)."""

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.maintenance.jobs import (
    MaintenanceResource,
    table_maintenance_job,
    table_maintenance_schedule,
)


def defs(settings: Settings) -> dg.Definitions:
    """The job also uses the shared ``pyspark`` resource."""
    return dg.Definitions(
        jobs=[table_maintenance_job],
        schedules=[table_maintenance_schedule(settings)],
        resources={"maintenance": MaintenanceResource.from_settings(settings)},
    )
