"""The lakehouse resources every domain shares: the platform's Spark session (through dagster-pyspark) and the
pyiceberg catalog.

Both carry the lakehouse part of the settings as a typed config (:class:`LakehouseConfig`, taken from the one
``Settings`` object that ``cryptolake_dagster.definitions`` builds); nothing here reads the environment, except
Dagster resolving the ``EnvVar`` of a secret when a run starts.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster_pyspark import PySparkResource
from pydantic import PrivateAttr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment, spark_conf
from cryptolake.lakehouse.spark_host import attach_spark_session
from cryptolake.settings import Settings

SPARK_APP_NAME = "cryptolake-dagster"


def secret(env_name: str, value: str | None) -> Any:
    """An ``EnvVar`` (kept out of the Dagster UI) when the variable is set in the process environment, else
    ``value``. For resource fields holding credentials; called when the definitions are built."""
    if os.environ.get(env_name):
        return dg.EnvVar(env_name)
    return value


class _GivenSettings(Settings):
    """``Settings`` from the given values only: no environment variables, no ``.env`` file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class LakehouseConfig(dg.Config):
    """The settings the catalog, the lakehouse bootstrap and Spark's process environment are derived from."""

    state_dir: str
    catalog_name: str
    catalog_uri: str | None = None
    warehouse: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_path_style_access: bool | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LakehouseConfig:
        key = settings.s3_secret_access_key
        return cls(
            state_dir=str(settings.state_dir),
            catalog_name=settings.catalog_name,
            catalog_uri=settings.catalog_uri,
            warehouse=settings.warehouse,
            s3_endpoint=settings.s3_endpoint,
            s3_region=settings.s3_region,
            s3_path_style_access=settings.s3_path_style_access,
            s3_access_key_id=settings.s3_access_key_id,
            s3_secret_access_key=secret("CRYPTOLAKE_S3_SECRET_ACCESS_KEY", key.get_secret_value() if key else None),
        )

    def settings(self) -> Settings:
        """These values as ``Settings`` for the core's lakehouse functions (every other setting at its default)."""
        return _GivenSettings(**self.model_dump())


class LakehouseSparkResource(PySparkResource):
    """dagster-pyspark's resource, configured by ``spark_conf`` and with the lakehouse bootstrapped first."""

    lakehouse: LakehouseConfig

    @classmethod
    def from_settings(cls, settings: Settings, app_name: str = SPARK_APP_NAME) -> LakehouseSparkResource:
        return cls(spark_config=spark_conf(settings, app_name), lakehouse=LakehouseConfig.from_settings(settings))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        settings = self.lakehouse.settings()
        prepare_spark_environment(settings)
        # The platform's long-lived Spark driver when it runs (no JVM start per run), else a session of our own.
        attached = attach_spark_session(settings)
        if attached is not None:
            self._spark_session = attached
        else:
            super().setup_for_execution(context)
        self.spark_session.sparkContext.setLogLevel("WARN")


class IcebergCatalogResource(dg.ConfigurableResource):
    """The shared pyiceberg catalog (for metadata reads: snapshots, scans for checks)."""

    lakehouse: LakehouseConfig
    _catalog: Any = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings) -> IcebergCatalogResource:
        return cls(lakehouse=LakehouseConfig.from_settings(settings))

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = get_catalog(self.lakehouse.settings())
        return self._catalog


def lakehouse_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The shared resources: ``pyspark`` and ``iceberg`` (local or cluster is decided by the settings)."""
    return {
        "pyspark": LakehouseSparkResource.from_settings(settings),
        "iceberg": IcebergCatalogResource.from_settings(settings),
    }
