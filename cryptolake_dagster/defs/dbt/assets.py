"""dbt Gold models as daily-partitioned assets; the partition's time window is passed as dbt vars."""

import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from cryptolake.settings import get_settings
from cryptolake_dagster.defs.dbt.profile import dbt_env
from cryptolake_dagster.defs.dbt.resources import dbt_project
from cryptolake_dagster.defs.dbt.translator import CryptoLakeDbtTranslator
from cryptolake_dagster.partitions import daily_partitions


def partition_vars(start: datetime, end: datetime) -> dict[str, str]:
    """dbt vars for a partition's half-open time window [min_date, max_date)."""
    return {"min_date": start.strftime("%Y-%m-%d %H:%M:%S"), "max_date": end.strftime("%Y-%m-%d %H:%M:%S")}


@dbt_assets(
    manifest=dbt_project().manifest_path,
    dagster_dbt_translator=CryptoLakeDbtTranslator(),
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
)
def gold_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """Build the Gold star schema for the partition's day (incremental MERGE models re-run idempotently)."""
    start, end = context.partition_time_window
    # dbt-spark (session mode) starts its own Spark JVM in the dbt subprocess, which inherits this environment.
    os.environ.update(dbt_env(get_settings()))
    invocation = dbt.cli(["build", "--vars", json.dumps(partition_vars(start, end))], context=context)
    yield from invocation.stream()
