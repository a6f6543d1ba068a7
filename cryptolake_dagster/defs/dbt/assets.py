"""dbt Gold models as daily-partitioned assets; the run's time window is passed as dbt vars.

A run covers one day (the Bronze sensor) or a range of days (a backfill, see ``cryptolake_dagster.partitions``):
either way ``dbt build`` runs once, with ``min_date`` / ``max_date`` spanning the whole window — or, when the run's
Silver step refreshed only some minutes of its day (``cryptolake_dagster.refreshes``), spanning those minutes: the
models then rebuild the bars containing them and (daily models) their whole day. The incremental
models rebuild every hour (or day) starting inside the window from all of its input, so one build over a range
gives the tables that one build per day gives, at the fixed cost of a single dbt invocation.
"""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject, dbt_assets

from cryptolake_dagster.defs.dbt.resources import CryptoLakeDbtCliResource
from cryptolake_dagster.defs.dbt.translator import CryptoLakeDbtTranslator
from cryptolake_dagster.partitions import daily_partitions, ranged_backfill_policy
from cryptolake_dagster.quality.results import record_dbt_check_results
from cryptolake_dagster.refreshes import refreshed_window


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """dbt vars for a run's half-open time window [min_date, max_date) (one day or a range of days)."""
    return {"min_date": start.strftime("%Y-%m-%d %H:%M:%S"), "max_date": end.strftime("%Y-%m-%d %H:%M:%S")}


def gold_dbt_assets(project: DbtProject, coin_ids: dict[str, str] | None = None) -> dg.AssetsDefinition:
    """The dbt models of ``project`` (its manifest must exist) as one multi-asset, ``gold_dbt_models``."""

    @dbt_assets(
        manifest=project.manifest_path,
        dagster_dbt_translator=CryptoLakeDbtTranslator(),
        partitions_def=daily_partitions,
        backfill_policy=ranged_backfill_policy,
    )
    def gold_dbt_models(context: dg.AssetExecutionContext, dbt: CryptoLakeDbtCliResource) -> Iterator[Any]:
        """Build the Gold models for the run's day or range of days: one ``dbt build`` over the whole window
        (incremental MERGE models re-run idempotently)."""
        # A refresh rebuilds the bars and days of the minutes Silver refreshed in this run; else the whole window.
        start, end = refreshed_window(context) or context.partition_time_window
        dbt_vars: dict[str, object] = {**partition_vars(start, end)}
        if coin_ids:  # the platform's coin map (CRYPTOLAKE_COIN_IDS) over the project's defaults
            dbt_vars["coin_ids"] = coin_ids
        invocation = dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context)
        # dbt tests come back as asset check results: each run's are appended to quality.check_results
        yield from record_dbt_check_results(context, dbt.lakehouse, invocation.stream())

    return gold_dbt_models
