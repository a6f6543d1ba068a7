"""dbt Gold models as daily-partitioned assets; the run's time window is passed as dbt vars.

A run covers one day (the Bronze sensor) or a range of days (a backfill, see ``cryptolake_dagster.partitions``):
either way ``dbt build`` runs once, with ``min_date`` / ``max_date`` spanning the whole window — or, when the run's
Silver step refreshed only some minutes of its day (``cryptolake_dagster.refreshes``), spanning those minutes: the
models then rebuild the bars containing them and (daily models) their whole day. The incremental
models rebuild every hour (or day) starting inside the window from all of its input, so one build over a range
gives the tables that one build per day gives, at the fixed cost of a single dbt invocation.

dbt runs inside the run's process, on the run's Spark session, with a manifest parsed once per process
(``cryptolake_dagster.defs.dbt.in_process``): a build starts no JVM and parses nothing. With
``CRYPTOLAKE_DBT_IN_PROCESS=false`` it runs as a dbt subprocess, which starts a Spark JVM of its own.
"""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject, dbt_assets, get_asset_key_for_model

from cryptolake.tables import GOLD_BAR_TABLES, GOLD_COMPLETENESS_1M
from cryptolake_dagster.defs.dbt.in_process import build_in_process
from cryptolake_dagster.defs.dbt.resources import CryptoLakeDbtCliResource
from cryptolake_dagster.defs.dbt.translator import CryptoLakeDbtTranslator
from cryptolake_dagster.partitions import daily_partitions, ranged_backfill_policy
from cryptolake_dagster.quality.results import record_dbt_check_results
from cryptolake_dagster.refreshes import refreshed_window

#: Run before the other models, group after group, then tested, when a run builds them all: the bars readers wait
#: for — the 1-minute bars (and the completeness they carry), then the bars rolled up from them.
FIRST_MODELS = (
    (GOLD_COMPLETENESS_1M.split(".")[-1], GOLD_BAR_TABLES[0].split(".")[-1]),
    tuple(table.split(".")[-1] for table in GOLD_BAR_TABLES[1:]),
)


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """dbt vars for a run's half-open time window [min_date, max_date) (one day or a range of days)."""
    return {"min_date": start.strftime("%Y-%m-%d %H:%M:%S"), "max_date": end.strftime("%Y-%m-%d %H:%M:%S")}


def gold_dbt_assets(
    project: DbtProject, coin_ids: dict[str, str] | None = None, in_process: bool = True
) -> dg.AssetsDefinition:
    """The dbt models of ``project`` (its manifest must exist) as one multi-asset, ``gold_dbt_models``; dbt runs in
    the run's process (``in_process``) or as a subprocess with a Spark of its own."""

    @dbt_assets(
        manifest=project.manifest_path,
        dagster_dbt_translator=CryptoLakeDbtTranslator(),
        partitions_def=daily_partitions,
        backfill_policy=ranged_backfill_policy,
    )
    def gold_dbt_models(context: dg.AssetExecutionContext, dbt: CryptoLakeDbtCliResource) -> Iterator[Any]:
        """Build the Gold models for the run's day or range of days: one ``dbt build`` over the whole window
        (incremental models re-run idempotently: day overwrites and MERGEs)."""
        # A refresh rebuilds the bars and days of the minutes Silver refreshed since the incremental models were
        # last built (this run's, and those of runs whose Gold step failed); else the whole window.
        gold_keys = [key for key in incremental_keys if key in context.selected_asset_keys]
        start, end = (
            refreshed_window(context.instance, context.partition_keys, gold_keys) or context.partition_time_window
        )
        # The platform's coin map (CRYPTOLAKE_COIN_IDS) over the project's defaults: the same in every run.
        static_vars = {"coin_ids": coin_ids} if coin_ids else {}
        run_vars = partition_vars(start, end)
        if in_process:
            events = build_in_process(context, project, static_vars, run_vars, first=FIRST_MODELS)
        else:
            events = dbt.cli(["build", "--vars", json.dumps({**static_vars, **run_vars})], context=context).stream()
        # dbt tests come back as asset check results: each run's are appended to quality.check_results
        yield from record_dbt_check_results(context, dbt.lakehouse, events)

    manifest = json.loads(Path(project.manifest_path).read_text())
    incremental_keys = [
        get_asset_key_for_model([gold_dbt_models], node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
    ]
    return gold_dbt_models
