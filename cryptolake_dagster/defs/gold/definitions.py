"""The Gold domain: the checks of the Gold tables (the Gold models themselves are the dbt domain's) and the table
every check records its results in, quality.check_results."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.gold.checks import GOLD_CHECKS
from cryptolake_dagster.quality.results import check_results_asset


def defs(settings: Settings) -> dg.Definitions:
    """The Gold checks (they use the shared ``pyspark`` and ``iceberg`` resources) and quality.check_results."""
    return dg.Definitions(assets=[check_results_asset], asset_checks=GOLD_CHECKS)
