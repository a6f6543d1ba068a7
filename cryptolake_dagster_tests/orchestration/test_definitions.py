"""The one Definitions object loads with every asset, check, job and sensor; the dbt project parses; importing the
code location does no work (the definitions are built on demand from the settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from cryptolake.settings import REPO_ROOT
from cryptolake.tables import ALL_TABLES, GOLD_OHLCV_1H
from cryptolake_dagster.asset_keys import table_key


def test_definitions_load_every_asset_check_and_sensor(settings) -> None:
    from cryptolake_dagster.definitions import load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected = {table_key(t).to_user_string() for t in ALL_TABLES}
    expected |= {GOLD_OHLCV_1H.replace(".", "/"), "gold/dim_symbol"}
    assert expected <= keys, expected - keys
    # dbt sources resolve to the Spark-built Silver asset: lineage is stitched, no dangling source asset.
    assert dg.AssetKey(["silver", "ohlcv_1m"]) in graph.get(dg.AssetKey(["gold", "fct_ohlcv_1h"])).parent_keys
    check_names = {key.name for key in graph.asset_check_keys}
    assert {"soda_gold_fct_ohlcv_1h", "soda_silver_ohlcv_1m"} <= check_names
    sensor = defs.resolve_sensor_def("bronze_trades_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    job = defs.resolve_job_def("silver_gold_daily")
    assert job.partitions_def is not None
    # Every table asset is partitioned by UTC day, except the rejected-rows table.
    for key in ("silver/ohlcv_1m", "gold/fct_ohlcv_1h", "bronze/trades"):
        assert graph.get(dg.AssetKey.from_user_string(key)).partitions_def is not None


def test_dbt_project_parses(settings, tmp_path) -> None:
    from cryptolake_dagster.defs.dbt.profile import DBT_PROJECT_DIR, write_dbt_profile
    from cryptolake_dagster.defs.dbt.resources import dbt_executable

    profiles = write_dbt_profile(settings, tmp_path / "profiles")
    result = subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(profiles),
         "--target-path", str(tmp_path / "target")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "target" / "manifest.json").is_file()


# Imports every module of cryptolake_dagster and reports what that did: subprocesses started, Settings built,
# CRYPTOLAKE_* variables read (or the environment iterated), logging configured, and what ``definitions.defs`` is.
# The third-party libraries those modules import are imported first: some do work of their own when imported
# (dagster's croniter runs `file`, pyiceberg reads its PYICEBERG_* variables), which is not the code location's.
_IMPORT_PROBE = """
import ast, importlib, json, logging, os, pathlib, pkgutil, subprocess, sys

package = pathlib.Path(sys.argv[1])
for path in [*package.rglob("*.py"), *package.parent.joinpath("cryptolake").rglob("*.py")]:
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
        for name in names:
            if name.split(".")[0] not in ("cryptolake", "cryptolake_dagster"):
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass
import structlog

spawned, read, built = [], [], []
_popen_init = subprocess.Popen.__init__
def _record_popen(self, args, *rest, **kwargs):
    spawned.append(str(args))
    return _popen_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = _record_popen

class _RecordingEnviron(type(os.environ)):
    def __getitem__(self, key):
        if str(key).startswith("CRYPTOLAKE_"):
            read.append(key)
        return super().__getitem__(key)
    def __iter__(self):
        read.append("<iterated>")
        return super().__iter__()
os.environ.__class__ = _RecordingEnviron

import cryptolake.settings
_settings_init = cryptolake.settings.Settings.__init__
def _record_settings(self, *args, **kwargs):
    built.append(kwargs)
    _settings_init(self, *args, **kwargs)
cryptolake.settings.Settings.__init__ = _record_settings

import cryptolake_dagster
import cryptolake_dagster.definitions
for module in pkgutil.walk_packages(cryptolake_dagster.__path__, "cryptolake_dagster."):
    importlib.import_module(module.name)
print(json.dumps({
    "spawned": spawned,
    "read": read,
    "settings_built": len(built),
    "root_handlers": len(logging.getLogger().handlers),
    "structlog_configured": structlog.is_configured(),
    "defs": type(cryptolake_dagster.definitions.defs).__name__,
}))
"""


def test_importing_the_code_location_does_no_work(tmp_path: Path) -> None:
    """No dbt parse (no subprocess at all), no settings read, no logging configured, nothing created: with
    settings that would fail to build and a state directory that does not exist."""
    state_dir = tmp_path / "missing" / "state"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("CRYPTOLAKE_", "DAGSTER_"))},
        "CRYPTOLAKE_STATE_DIR": str(state_dir),
        "CRYPTOLAKE_PROFILE": "cluster",  # without its endpoints: building Settings would raise
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, str(REPO_ROOT / "cryptolake_dagster")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "spawned": [],
        "read": [],
        "settings_built": 0,
        "root_handlers": 0,
        "structlog_configured": False,
        "defs": "LazyDefinitions",
    }
    assert not (tmp_path / "missing").exists()


def test_resources_carry_the_settings_they_were_built_from(settings) -> None:
    from cryptolake.lakehouse.spark import spark_conf
    from cryptolake_dagster.definitions import load_definitions
    from cryptolake_dagster.defs.dbt.profile import dbt_cli_env

    resources = load_definitions().resources
    for name in ("pyspark", "iceberg", "dbt"):
        lakehouse = resources[name].lakehouse
        assert lakehouse.state_dir == str(settings.state_dir) and lakehouse.catalog_name == settings.catalog_name
        assert lakehouse.settings().resolved_catalog_uri == settings.resolved_catalog_uri
        assert lakehouse.settings().resolved_warehouse == settings.resolved_warehouse
    assert resources["pyspark"].spark_config == spark_conf(settings, "cryptolake-dagster")
    assert resources["dbt"].env == dbt_cli_env(settings)
    assert resources["dbt"].profiles_dir == resources["dbt"].env["DBT_PROFILES_DIR"]


def test_workspace_loads(settings) -> None:
    """``workspace.yaml`` (what ``dagster dev -w workspace.yaml`` and ``make run`` load) names a valid code location."""
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(settings.state_dir), "DAGSTER_HOME": str(settings.dagster_home)}
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
