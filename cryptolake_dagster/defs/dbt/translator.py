"""Map dbt nodes to CryptoLake asset keys: ``[namespace, table]``, so dbt sources line up with Spark assets; every
dbt model (a Gold table) gets the Gold freshness policy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

#: Gold is built by the same runs as Silver (silver_gold_daily), right after it: Silver's windows plus an hour.
GOLD_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=1))


class CryptoLakeDbtTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return "gold"

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("model.") and spec.freshness_policy is None:
            return spec.replace_attributes(freshness_policy=GOLD_FRESHNESS)
        return spec
