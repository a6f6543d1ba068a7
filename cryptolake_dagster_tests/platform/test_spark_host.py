"""The long-lived Spark host: runs attach to its driver instead of starting a JVM, and survive each other.

Real host process (``python -m cryptolake.lakehouse.spark_host``) on a lakehouse of its own; two processes one
after the other attach through the platform's Dagster Spark resource (``LakehouseSparkResource``), write to and read
an Iceberg table, and exit. Both must have run in the host's JVM (its application id and JVM pid), started no JVM
of their own, and left the host serving. After SIGTERM the host is gone with its file, and a process starts its own
session again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.spark_host import host_file
from cryptolake.settings import REPO_ROOT, Settings

#: Run in a fresh interpreter (this test process has a Spark session already, so it would not attach).
ATTACHED_RUN = """
import json, sys
import dagster as dg
from pyspark import SparkContext
from cryptolake.settings import get_settings
from cryptolake_dagster.resources import LakehouseSparkResource

with dg.build_resources({"spark": LakehouseSparkResource.from_settings(get_settings())}) as resources:
    spark = resources.spark.spark_session
    value = int(sys.argv[1])
    spark.sql("CREATE TABLE IF NOT EXISTS lake.silver.host_probe (v BIGINT) USING iceberg")
    spark.sql(f"INSERT INTO lake.silver.host_probe VALUES ({value})")
    seen = sorted(r.v for r in spark.sql("SELECT v FROM lake.silver.host_probe").collect())
    jvm_pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    print(json.dumps({
        "app_id": spark.sparkContext.applicationId,
        "jvm_pid": int(jvm_pid),
        "own_jvm": getattr(SparkContext._gateway, "proc", None) is not None,
        "seen": seen,
    }))
"""


def _attached_run(env: dict[str, str], value: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", ATTACHED_RUN, str(value)], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _java_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if "java" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]


def test_runs_attach_to_the_spark_host_and_leave_it_serving(settings: Settings, tmp_path: Path) -> None:
    private = settings.model_copy(update={"state_dir": tmp_path / "state"})
    bootstrap_lakehouse(private)
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(private.state_dir), "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "host.log", "wb")
    host = subprocess.Popen(
        [sys.executable, "-m", "cryptolake.lakehouse.spark_host"], env=env, cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    path = host_file(private)
    try:
        deadline = time.monotonic() + 180
        while not path.exists() and host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert path.exists(), (tmp_path / "host.log").read_text()[-3000:]
        info = json.loads(path.read_text())
        assert path.stat().st_mode & 0o077 == 0, "the host file carries the gateway secret: owner only"
        (host_jvm,) = _java_children(host.pid)

        first = _attached_run(env, 1)
        second = _attached_run(env, 2)  # after the first process exited: the host still serves
        for run in (first, second):
            assert run["app_id"] == info["app_id"]
            assert run["jvm_pid"] == host_jvm
            assert run["own_jvm"] is False
        assert first["seen"] == [1] and second["seen"] == [1, 2]
        assert host.poll() is None
    finally:
        host.send_signal(signal.SIGTERM)
        code = host.wait(60)
        log.close()
    assert code == 0, (tmp_path / "host.log").read_text()[-3000:]
    assert not path.exists()
    alone = _attached_run(env, 3)  # no host: the resource starts a session of its own, as before
    assert alone["app_id"] != info["app_id"] and alone["own_jvm"] is True
    assert alone["seen"] == [1, 2, 3]
