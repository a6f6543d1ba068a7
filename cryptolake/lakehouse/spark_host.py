"""A long-lived Spark driver that the platform's runs attach to, instead of each starting a JVM of its own.

``python -m cryptolake.lakehouse.spark_host`` (started by ``cryptolake run``) builds the lakehouse Spark session,
writes the address and secret of its Py4J gateway to ``<state>/spark/host.json`` (mode 0600) and serves until
SIGTERM. :func:`attach_spark_session` connects a process to that gateway — what pyspark itself does for
``spark-submit``'s Python apps — and returns a new session of the host's: its own SQL configuration, temporary
views and current catalog, on the shared SparkContext (one JVM, warm Iceberg classes and catalog connections). After
it, ``SparkSession.builder.getOrCreate()`` anywhere in the process (dbt-spark's session mode too) returns that
session. A process attached must never stop it: that would stop the host's SparkContext for every run.

The host's JVM is the one Spark driver of the runs: concurrent runs share its memory
(``CRYPTOLAKE_SPARK_HOST_DRIVER_MEMORY``). When no host answers, :func:`attach_spark_session` returns None and the
caller starts its own session as before.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cryptolake.lakehouse.spark import build_spark_session, prepare_spark_environment
from cryptolake.logging import configure_logging, get_logger
from cryptolake.processes import environ_overlay
from cryptolake.settings import Settings, get_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = get_logger(__name__)
HOST_APP_NAME = "cryptolake-runs"


def host_file(settings: Settings) -> Path:
    """Where a running host publishes its gateway: ``<state>/spark/host.json``."""
    return settings.spark_tmp_dir / "host.json"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def serve(settings: Settings, stop: threading.Event | None = None) -> None:
    """Start the host's Spark session, publish its gateway and serve until ``stop`` is set (or SIGTERM/SIGINT)."""
    stop = stop or threading.Event()
    host_settings = settings.model_copy(update={"spark_driver_memory": settings.spark_host_driver_memory})
    started = time.monotonic()
    spark = build_spark_session(host_settings, HOST_APP_NAME)
    spark.sql("SHOW NAMESPACES").collect()  # load the Iceberg catalog once: the first run finds it warm
    sc = spark.sparkContext
    params = sc._gateway.gateway_parameters
    path = host_file(settings)
    _write_private(
        path,
        json.dumps({"port": params.port, "secret": params.auth_token, "pid": os.getpid(), "app_id": sc.applicationId}),
    )
    log.info(
        "spark host serving", file=str(path), app_id=sc.applicationId, seconds=round(time.monotonic() - started, 1)
    )
    try:
        while not stop.wait(1.0):
            pass
    finally:
        path.unlink(missing_ok=True)
        spark.stop()
        log.info("spark host stopped")


def _host_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def attach_spark_session(settings: Settings) -> SparkSession | None:
    """A new session of the running Spark host of ``settings`` (see the module's text), or None when none runs.

    In a process that already has a Spark session, that session is returned instead (nothing to attach)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is not None:
        return SparkSession.builder.getOrCreate()
    path = host_file(settings)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _host_alive(int(info.get("pid", 0))):
        log.warning("spark host file left by a host that is gone: starting a Spark session here", file=str(path))
        return None
    prepare_spark_environment(settings)
    # launch_gateway() connects to the gateway these name instead of starting a JVM. They are removed again at
    # once: a subprocess inheriting them (e.g. a dbt subprocess) would try to create a second SparkContext there.
    gateway_env = {"PYSPARK_GATEWAY_PORT": str(info["port"]), "PYSPARK_GATEWAY_SECRET": str(info["secret"])}
    try:
        with environ_overlay(gateway_env):
            gateway = launch_gateway()
        jvm = gateway.jvm
        jsc = jvm.org.apache.spark.api.java.JavaSparkContext.fromSparkContext(
            jvm.org.apache.spark.SparkContext.getOrCreate()
        )
        sc = SparkContext(gateway=gateway, jsc=jsc, conf=SparkConf(_jconf=jsc.sc().conf()))
        root = jvm.org.apache.spark.sql.SparkSession.getDefaultSession().get()
        spark = SparkSession(sc, jsparkSession=root.newSession())
        jvm.org.apache.spark.sql.SparkSession.setDefaultSession(root)  # the host's session stays the JVM default
    except Exception as error:
        log.warning("spark host does not answer: starting a Spark session here", file=str(path), error=str(error))
        SparkContext._active_spark_context = None
        SparkContext._gateway = None
        SparkContext._jvm = None
        return None
    log.info("attached to the spark host", app_id=info.get("app_id"), port=info["port"])
    return spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cryptolake.lakehouse.spark_host",
        description="Serve one long-lived Spark driver for the platform's runs: they attach to it over Py4J "
        "(its address in <state>/spark/host.json) instead of starting a JVM each. Stops on SIGTERM / Ctrl-C.",
    )
    parser.parse_args(argv)
    configure_logging()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve(get_settings(), stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
