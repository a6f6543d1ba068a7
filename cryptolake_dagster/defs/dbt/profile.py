"""dbt-spark (session mode) profile generated from the platform's Spark settings — no second copy of them — and
the environment of a dbt subprocess.

dbt-spark's session mode (``dbt/adapters/spark/session.py``) runs every statement through
``SparkSession.builder.enableHiveSupport()``, then ``.config(key, value)`` for each ``server_side_parameters`` entry,
then ``getOrCreate()``. The first statement therefore creates the session — and launches the JVM through
``spark-submit --conf key=value ...`` — with every entry of :func:`~cryptolake.lakehouse.spark.spark_conf`,
including the launch-time ones (``spark.master``, ``spark.jars``, ``spark.driver.memory``,
``spark.driver.extraJavaOptions``). Later statements reuse that session (Spark then ignores static settings, which
are already in effect). ``spark.sql.catalogImplementation=in-memory`` is applied after ``enableHiveSupport()`` and
wins, so no Derby ``metastore_db`` appears; ``spark.sql.defaultCatalog`` makes dbt's two-part names (``gold.x``,
``silver.y``) resolve in the Iceberg catalog. dbt-spark adds ``spark.sql.ansi.enabled=false`` itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from cryptolake.lakehouse.spark import prepare_spark_environment, spark_conf
from cryptolake.settings import REPO_ROOT, Settings

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PROFILE_NAME = "cryptolake"
TARGET_NAME = "local"
DBT_APP_NAME = "cryptolake-dbt"

_SPARK_ENV_KEYS = ("JAVA_HOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_LOCAL_IP")


def project_sources(project_dir: Path = DBT_PROJECT_DIR) -> list[Path]:
    """The files of the dbt project that its manifest is parsed from (project file, models, macros, tests)."""
    sources = [project_dir / "dbt_project.yml"]
    for folder in ("models", "macros", "tests"):
        sources += (path for path in (project_dir / folder).rglob("*") if path.is_file())
    return sources


def default_profiles_dir(settings: Settings) -> Path:
    """Where the generated ``profiles.yml`` lives unless told otherwise: ``<state dir>/dbt``."""
    return settings.state_dir.resolve() / "dbt"


def dbt_target_path(settings: Settings) -> Path:
    """dbt's target directory (manifest, run results, each dagster-dbt invocation's own folder): ``<state>/dbt/target``."""
    return default_profiles_dir(settings) / "target"


def _jinja_literal(value: str) -> str:
    """dbt renders profiles.yml with Jinja: keep values containing Jinja delimiters (e.g. a password) literal."""
    if any(token in value for token in ("{{", "{%", "{#")):
        if "endraw" in value:
            raise ValueError("a Spark setting contains 'endraw' and Jinja delimiters; dbt cannot read it literally")
        return "{% raw %}" + value + "{% endraw %}"
    return value


def dbt_statement_conf(settings: Settings) -> dict[str, str]:
    """Spark SQL settings of dbt's statements, over :func:`~cryptolake.lakehouse.spark.spark_conf`.

    Gold's statements read minute and daily bars (at most a day of minutes per symbol in a refresh), so Spark's
    per-statement planning weighs more than their work: no adaptive re-planning or dynamic partition pruning, and
    one shuffle partition (``CRYPTOLAKE_DBT_SHUFFLE_PARTITIONS``) for a few thousand rows (figures: "Rollup writes"
    in docs/benchmarks.md). Partition overwrites replace only the partitions written (``insert_overwrite``). A build
    in the run's process puts the session's own values back afterwards (``in_process``)."""
    return _STATEMENT_CONF | {"spark.sql.shuffle.partitions": str(settings.dbt_shuffle_partitions)}


_STATEMENT_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.optimizer.dynamicPartitionPruning.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}
#: The keys :func:`dbt_statement_conf` sets.
DBT_STATEMENT_KEYS = (*_STATEMENT_CONF, "spark.sql.shuffle.partitions")


def dbt_profile(settings: Settings) -> dict[str, object]:
    """The ``profiles.yml`` content: profile ``cryptolake``, target ``local``, Spark settings from spark.py with
    :func:`dbt_statement_conf` over them."""
    conf = spark_conf(settings, DBT_APP_NAME) | dbt_statement_conf(settings)
    parameters = {key: _jinja_literal(str(value)) for key, value in conf.items()}
    return {
        PROFILE_NAME: {
            "target": TARGET_NAME,
            "outputs": {
                TARGET_NAME: {
                    "type": "spark",
                    "method": "session",
                    "host": "NA",
                    "schema": "gold",
                    "threads": settings.dbt_threads,
                    "server_side_parameters": parameters,
                }
            },
        }
    }


def write_dbt_profile(settings: Settings, profiles_dir: Path | None = None) -> Path:
    """Write ``profiles.yml`` into ``profiles_dir`` (default ``<state dir>/dbt``) and return that directory.

    The directory is what ``--profiles-dir`` / ``DBT_PROFILES_DIR`` / ``DbtProject(profiles_dir=...)`` expect. The
    file is rewritten atomically and only when its content changes; it is private (0600) since a PostgreSQL
    catalog URI may carry a password.
    """
    directory = (profiles_dir or default_profiles_dir(settings)).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    text = "# Generated by cryptolake_dagster.defs.dbt.profile from the platform settings. Do not edit.\n"
    text += yaml.safe_dump(dbt_profile(settings), sort_keys=False, width=1_000_000)
    path = directory / "profiles.yml"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".profiles-", suffix=".yml")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return directory


# log4j2 for the Spark JVM dbt starts: dbt-spark calls getOrCreate() with every setting before each statement, and
# Spark then warns "Using an existing Spark session; only runtime SQL configurations will take effect" each time.
_SPARK_LOG4J2 = """\
# Generated by cryptolake_dagster.defs.dbt.profile: Spark logging of dbt's session (warnings and errors only).
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.session.name = org.apache.spark.sql.SparkSession
logger.session.level = error
logger.conf.name = org.apache.spark.SparkConf
logger.conf.level = error
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


def _spark_conf_dir(settings: Settings) -> Path:
    directory = default_profiles_dir(settings) / "spark-conf"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "log4j2.properties"
    if not path.is_file() or path.read_text(encoding="utf-8") != _SPARK_LOG4J2:
        path.write_text(_SPARK_LOG4J2, encoding="utf-8")
    return directory


def dbt_cli_env(settings: Settings) -> dict[str, str]:
    """The dbt-specific part of :func:`dbt_env`, without preparing Spark: writes the profile, keeps dbt's log file
    and target directories in the state directory instead of the source tree (dagster-dbt puts each invocation's
    target directory under ``DBT_TARGET_PATH``), and points ``SPARK_CONF_DIR`` at a quiet log4j2 configuration for
    dbt's Spark JVM (unless ``SPARK_CONF_DIR`` is already set)."""
    env = {
        "DBT_PROFILES_DIR": str(write_dbt_profile(settings)),
        "DBT_LOG_PATH": str(default_profiles_dir(settings) / "logs"),
        "DBT_TARGET_PATH": str(dbt_target_path(settings)),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    if "SPARK_CONF_DIR" not in os.environ:  # a cluster's own Spark configuration directory wins
        env["SPARK_CONF_DIR"] = str(_spark_conf_dir(settings))
    return env


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment variables a dbt subprocess needs, to merge over ``os.environ``.

    Prepares Spark first (:func:`prepare_spark_environment`: JAVA_HOME, the Python for Spark workers, the local IP,
    and the catalog tables that must exist before Spark's JdbcCatalog connects), then adds :func:`dbt_cli_env`.
    """
    prepare_spark_environment(settings)
    env = {key: os.environ[key] for key in _SPARK_ENV_KEYS if key in os.environ}
    return {**env, **dbt_cli_env(settings)}
