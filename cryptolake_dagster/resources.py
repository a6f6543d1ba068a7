"""Resources: the platform's Spark session (through dagster-pyspark), the pyiceberg catalog and dbt."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster_pyspark import PySparkResource
from pydantic import PrivateAttr
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment, spark_conf
from cryptolake.settings import Settings, get_settings


class LakehouseSparkResource(PySparkResource):
    """dagster-pyspark's resource, configured by ``spark_conf`` and with the lakehouse bootstrapped first."""

    state_dir: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        prepare_spark_environment(Settings(state_dir=self.state_dir))
        super().setup_for_execution(context)
        self.spark_session.sparkContext.setLogLevel("WARN")


class IcebergCatalogResource(dg.ConfigurableResource):
    """The shared pyiceberg catalog (for metadata reads: snapshots, scans for checks)."""

    state_dir: str
    _catalog: Any = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.state_dir)

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = get_catalog(self.settings)
        return self._catalog


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Resource instances for the current environment (local or cluster is decided by the settings)."""
    from cryptolake_dagster.defs.dbt.resources import build_dbt_resource

    settings = settings or get_settings()
    state_dir = str(settings.state_dir)
    return {
        "pyspark": LakehouseSparkResource(spark_config=spark_conf(settings, "cryptolake-dagster"), state_dir=state_dir),
        "iceberg": IcebergCatalogResource(state_dir=state_dir),
        "dbt": build_dbt_resource(settings),
    }
