"""The Gold domain: the Soda check of gold.fct_ohlcv_1h (the Gold models themselves are the dbt domain's)."""

from __future__ import annotations

import dagster as dg

from cryptolake.settings import Settings
from cryptolake_dagster.defs.gold.checks import soda_gold_fct_ohlcv_1h


def defs(settings: Settings) -> dg.Definitions:
    """The Gold checks; they use the shared ``pyspark`` resource."""
    return dg.Definitions(asset_checks=[soda_gold_fct_ohlcv_1h])
