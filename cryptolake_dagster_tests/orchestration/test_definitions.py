"""The one Definitions object loads with every asset, check, job and sensor; the dbt project parses."""

from __future__ import annotations

import subprocess

import dagster as dg

from cryptolake.tables import ALL_TABLES, GOLD_OHLCV_1H
from cryptolake_dagster.asset_keys import table_key


def test_definitions_load_every_asset_check_and_sensor(settings) -> None:
    from cryptolake_dagster.definitions import defs

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
