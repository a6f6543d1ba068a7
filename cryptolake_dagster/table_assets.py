"""The decorator arguments every daily-partitioned table asset repeats, in one place.

An asset that writes one Iceberg table of the registry gets its key, description and ``table`` metadata from the
table, the platform's UTC-day partitions, a group, kinds and a freshness policy:
``@dg.asset(**daily_table_asset_kwargs(TABLE, "silver", freshness=...), deps=[...])``, and for the specs of a
multi-asset ``dg.AssetSpec(**daily_table_spec_kwargs(TABLE, "silver", freshness=...))``.
"""

from collections.abc import Iterable
from typing import Any

import dagster as dg

from cryptolake.tables import Table
from cryptolake_dagster.asset_keys import table_key
from cryptolake_dagster.partitions import daily_partitions

SPARK_ICEBERG_KINDS = ("spark", "iceberg")


def daily_table_spec_kwargs(
    table: Table,
    group: str,
    *,
    freshness: dg.FreshnessPolicy,
    kinds: Iterable[str] = SPARK_ICEBERG_KINDS,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``dg.AssetSpec`` (and ``dg.asset``) for a daily-partitioned asset writing ``table``."""
    return {
        "key": table_key(table),
        "description": table.description,
        "group_name": group,
        "kinds": set(kinds),
        "partitions_def": daily_partitions,
        "freshness_policy": freshness,
        "metadata": {"table": table.identifier, **(metadata or {})},
    }


def daily_table_asset_kwargs(
    table: Table, group: str, *, backfill_policy: dg.BackfillPolicy | None = None, **spec_options: Any
) -> dict[str, Any]:
    """Keyword arguments of ``dg.asset``: the spec's (``spec_options`` as in :func:`daily_table_spec_kwargs`), plus
    a backfill policy (default: one run per day)."""
    return {
        **daily_table_spec_kwargs(table, group, **spec_options),
        "backfill_policy": backfill_policy or dg.BackfillPolicy.multi_run(1),
    }
