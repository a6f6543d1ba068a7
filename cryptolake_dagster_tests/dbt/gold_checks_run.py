"""Materialize every Gold asset with its checks in a lakehouse of its own, as the orchestrator does: run with
``python -m cryptolake_dagster_tests.dbt.gold_checks_run OUT FIRST LAST BAD_DAY`` in a process whose
``CRYPTOLAKE_STATE_DIR`` names that lakehouse (its Spark session then points at it; a test process's session
points at the tests' shared lakehouse).

1. one ranged run of the Gold assets of ``silver_gold_daily`` from FIRST to LAST: ``dbt build`` once over the
   window (its tests are asset checks) and every Gold asset check (Soda, the anomaly check);
2. a bad bar planted in gold.fct_ohlcv_5m on BAD_DAY (a copy of a bar with high and low swapped: a duplicate key
   and high < low), the day's Soda check of that table run alone, and the bad bar deleted again.

OUT receives what the runs did (JSON): their ids, success, step durations, materializations and check evaluations,
and the checks every Gold asset has in the definitions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from cryptolake.settings import get_settings
from cryptolake_dagster.backfill import RANGE_END_TAG, RANGE_START_TAG

BAD_TABLE = "gold.fct_ohlcv_5m"
BAD_CHECK = "soda_gold_fct_ohlcv_5m"


def _summary(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    failures = [
        f"{event.step_key}: {event.step_failure_data.error.message if event.step_failure_data.error else '?'}"
        for event in result.get_step_failure_events()
    ]
    durations = {
        event.step_key: round(event.event_specific_data.duration_ms / 1000, 1)
        for event in result.all_events
        if event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
        and getattr(event.event_specific_data, "duration_ms", None) is not None
    }
    return {
        "run_id": result.run_id,
        "success": result.success,
        "step_failures": failures,
        "step_seconds": durations,
        "materialized": sorted({e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}),
        "evaluations": [
            {
                "asset_key": e.asset_key.to_user_string(),
                "check_name": e.check_name,
                "passed": e.passed,
                "severity": e.severity.value,
                "failed": (e.metadata["failed"].value if "failed" in e.metadata else None),
            }
            for e in result.get_asset_check_evaluations()
        ],
    }


def _plant_bad_bar(spark: Any, day: str) -> None:
    from pyspark.sql import functions as F

    bar = (
        spark.table(BAD_TABLE)
        .where(f"cast(open_time as date) = DATE '{day}' AND high > low")
        .orderBy("market", "symbol", "open_time")
        .limit(1)
    )
    bar.withColumns({"high": F.col("low"), "low": F.col("high")}).writeTo(BAD_TABLE).append()


def main(out: Path, first: str, last: str, bad_day: str) -> None:
    from cryptolake.lakehouse.spark import build_spark_session
    from cryptolake_dagster.definitions import load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    gold = {key for key in graph.get_all_asset_keys() if key.path[0] == "gold"}
    checks: dict[str, list[str]] = {key.to_user_string(): [] for key in gold}
    for check in graph.asset_check_keys:
        if check.asset_key in gold:
            checks[check.asset_key.to_user_string()].append(check.name)
    job = defs.resolve_job_def("silver_gold_daily")
    gold_checks = {check for check in graph.asset_check_keys if check.asset_key in gold}
    built = job.get_subset(asset_selection=gold, asset_check_selection=gold_checks).execute_in_process(
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last}, raise_on_error=False
    )
    report: dict[str, Any] = {"checks": checks, "gold": _summary(built)}

    spark = build_spark_session(get_settings())  # the session the runs used
    _plant_bad_bar(spark, bad_day)
    try:
        selection = {dg.AssetCheckKey(dg.AssetKey(BAD_TABLE.split(".")), BAD_CHECK)}
        bad = job.get_subset(asset_check_selection=selection).execute_in_process(
            partition_key=bad_day, raise_on_error=False
        )
        report["bad_bar"] = _summary(bad)
    finally:
        spark.sql(f"DELETE FROM {BAD_TABLE} WHERE high < low")
    out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:5])
