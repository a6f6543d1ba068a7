"""The one Spark configuration and session builder used by every Spark user.

Dagster (through dagster-pyspark's ``PySparkResource``), the Bronze writer and the dbt profile all take their
settings from :func:`spark_conf`, so they share the Iceberg catalog with pyiceberg. Pitfalls handled here (see
PLATFORM_NOTES.md): the Iceberg runtime jar comes from the ``snowpark-connect-deps-iceberg`` wheel; Spark must not
create the JDBC catalog tables itself (pyiceberg does, first); the catalog cache is off so Spark sees pyiceberg's
commits; Hive support is overridden to avoid a Derby metastore in the working directory.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import SQLITE_BUSY_TIMEOUT_S, catalog_kind, s3_properties
from cryptolake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ICEBERG_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"


class PlatformSetupError(RuntimeError):
    """Something the platform needs on this machine is missing; the message says what to install."""


def iceberg_runtime_jar() -> Path:
    jar = Path(str(importlib.resources.files("snowpark_connect_deps_iceberg") / "jars" / ICEBERG_JAR))
    if not jar.is_file():
        raise PlatformSetupError(
            f"Iceberg Spark runtime jar not found at {jar}; reinstall with "
            "`pip install snowpark-connect-deps-iceberg==1.0.2` (1.0.3 is broken)"
        )
    return jar


def java_home() -> str | None:
    """JAVA_HOME if set, else the JDK that provides ``java`` on PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


def _jdbc_catalog(settings: Settings) -> tuple[dict[str, str], Path]:
    """Spark JDBC catalog properties and the driver jar for a sqlite:/// or postgresql:// SQLAlchemy URI."""
    url = urlparse(settings.resolved_catalog_uri)
    if url.scheme.startswith("sqlite"):
        jar = settings.sqlite_jdbc_jar
        props = {
            "uri": f"jdbc:sqlite:{unquote(url.path)}",
            "jdbc.busy_timeout": str(SQLITE_BUSY_TIMEOUT_S * 1000),
        }
        package = "libxerial-sqlite-jdbc-java"
    elif url.scheme.startswith("postgresql"):
        jar = settings.postgres_jdbc_jar
        port = f":{url.port}" if url.port else ""
        props = {"uri": f"jdbc:postgresql://{url.hostname}{port}{url.path}"}
        if url.username:
            props["jdbc.user"] = unquote(url.username)
        if url.password:
            props["jdbc.password"] = unquote(url.password)
        package = "libpostgresql-jdbc-java"
    else:
        raise PlatformSetupError(
            f"unsupported catalog URI scheme {url.scheme!r}: use sqlite:///..., postgresql+psycopg2://... "
            "or an http(s):// REST catalog in CRYPTOLAKE_CATALOG_URI"
        )
    if not jar.is_file():
        raise PlatformSetupError(f"JDBC driver {jar} is missing: install the Debian package {package}")
    return {"type": "jdbc", "jdbc.schema-version": "V1", "jdbc.init-catalog-tables": "false", **props}, jar


def spark_conf(settings: Settings, app_name: str = "cryptolake") -> dict[str, str]:
    """Every Spark setting of the platform, as one flat dict (also used as dbt's server_side_parameters)."""
    name = settings.catalog_name
    jars = [str(iceberg_runtime_jar()), *settings.spark_extra_jars]
    if catalog_kind(settings) == "rest":
        catalog = {"type": "rest", "uri": settings.resolved_catalog_uri}
    else:
        catalog, driver = _jdbc_catalog(settings)
        jars.append(str(driver))
    if settings.s3_warehouse:
        catalog |= {
            "io-impl": "org.apache.iceberg.aws.s3.S3FileIO",  # needs iceberg-aws-bundle (CRYPTOLAKE_SPARK_EXTRA_JARS)
            "s3.path-style-access": str(settings.resolved_s3_path_style_access).lower(),
            **s3_properties(settings, "client.region"),
        }
    tmp = settings.spark_tmp_dir
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(jars),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        f"spark.sql.catalog.{name}": "org.apache.iceberg.spark.SparkCatalog",
        f"spark.sql.catalog.{name}.warehouse": settings.resolved_warehouse,
        f"spark.sql.catalog.{name}.cache-enabled": "false",
        **{f"spark.sql.catalog.{name}.{key}": value for key, value in catalog.items()},
        "spark.sql.defaultCatalog": name,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(tmp / "spark-warehouse"),
        "spark.local.dir": str(tmp / "local"),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -Dderby.system.home={tmp / 'derby'}",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": str(settings.spark_ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
    }
    return conf


def prepare_spark_environment(settings: Settings) -> None:
    """Process environment Spark needs: the same Python for driver and workers, JAVA_HOME, a local dir."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    home = java_home()
    if home is None:
        raise PlatformSetupError("Java 17 is missing: install the Debian package openjdk-17-jre-headless")
    os.environ.setdefault("JAVA_HOME", home)
    (settings.spark_tmp_dir / "local").mkdir(parents=True, exist_ok=True)
    # The catalog tables must exist before Spark's JdbcCatalog connects (jdbc.init-catalog-tables=false).
    bootstrap_lakehouse(settings)


def build_spark_session(settings: Settings, app_name: str = "cryptolake") -> SparkSession:
    """Get (or create) this process's Spark session, configured for the shared Iceberg catalog."""
    from pyspark.sql import SparkSession

    prepare_spark_environment(settings)
    builder = SparkSession.builder
    for key, value in spark_conf(settings, app_name).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # dbt-spark calls getOrCreate() with its settings before every statement; Spark then warns each time that
    # only runtime settings take effect (they all are already in effect): keep that one quiet.
    jvm = spark.sparkContext._jvm
    jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
        "org.apache.spark.sql.SparkSession", jvm.org.apache.logging.log4j.Level.ERROR
    )
    return spark
