"""The dbt domain: the Gold models of ``dbt_project/`` and the dbt CLI resource."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.dbt.assets import gold_dbt_assets
from cryptolake_dagster.defs.dbt.resources import CryptoLakeDbtCliResource, dbt_project


def defs(settings: Settings) -> dg.Definitions:
    """Writes the dbt profile for ``settings`` and runs ``dbt parse`` when the manifest is missing."""
    project = dbt_project(settings)
    return dg.Definitions(
        assets=[gold_dbt_assets(project, dict(settings.coin_ids), settings.dbt_in_process)],
        resources={"dbt": CryptoLakeDbtCliResource.from_settings(settings, project)},
    )
