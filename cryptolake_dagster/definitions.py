"""The Dagster code location of CryptoLake: every domain's assets, checks, jobs, schedules, sensors and resources.

Importing this module does nothing else: the definitions are built on demand, from one ``Settings`` object —

* ``defs`` (``@dg.definitions``) is what ``dagster dev -w workspace.yaml`` / ``-m cryptolake_dagster.definitions``
  and Dagster's run workers load: the process settings, logging configured from them;
* :func:`load_definitions` returns the same ``Definitions`` (built once per process) to Python callers;
* :func:`build_definitions` builds them for given settings (another state directory, a CLI's settings).

Building writes the dbt profile and runs ``dbt parse`` when the manifest is missing (the dbt domain).
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from cryptolake.logging import configure_logging
from cryptolake.settings import Settings, get_settings
from cryptolake_dagster.defs.alerts import definitions as alerts
from cryptolake_dagster.defs.bronze import definitions as bronze
from cryptolake_dagster.defs.dbt import definitions as dbt
from cryptolake_dagster.defs.gold import definitions as gold
from cryptolake_dagster.defs.maintenance import definitions as maintenance
from cryptolake_dagster.defs.repair import definitions as repair
from cryptolake_dagster.defs.silver import definitions as silver
from cryptolake_dagster.defs.sources import definitions as sources
from cryptolake_dagster.resources import lakehouse_resources

DOMAINS = (bronze, silver, dbt, gold, sources, repair, alerts, maintenance)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every domain's definitions merged, with the shared lakehouse resources; ``settings`` default to the
    process settings (``CRYPTOLAKE_*`` environment variables and ``.env``)."""
    settings = settings or get_settings()
    shared = dg.Definitions(
        resources=lakehouse_resources(settings),
        # Steps share the run's Spark session (a JVM per step would cost ~10 s and ~600 MB each on 2 cores).
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(shared, *(domain.defs(settings) for domain in DOMAINS))


@cache
def load_definitions() -> dg.Definitions:
    """The definitions of this process's settings, built on the first call."""
    return build_definitions()


@dg.definitions
def defs() -> dg.Definitions:
    """The code location's definitions (Dagster loads them by this name; see workspace.yaml)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return load_definitions()
