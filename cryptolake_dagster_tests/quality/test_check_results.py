"""Data quality with a memory, on real Spark, Iceberg, Soda, dbt and Dagster.

Bronze rows are appended with pyiceberg (bad ones too: the Bronze writer's contract would have refused them), the
real ``silver_gold_daily`` job runs, and what the checks decided is read back from quality.check_results:

* a day without trades passes every check, Gold's included (Gold has no rows because Silver has none);
* a planted bad day (a trade whose last raw id precedes its first: a Silver bar with a negative trade count) fails
  Silver's check, the Gold assets downstream are not built in that run, and the failure is recorded; after the fix,
  the re-run records the pass;
* Gold without rows for a day that has Silver bars fails Gold's check;
* the row-count anomaly check compares a day with the median of the days recorded in its trailing 7 calendar days.

Days, symbol and Kafka topic are used by no other test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, EqualTo

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES, GOLD_OHLCV_1H, QUALITY_CHECK_RESULTS
from cryptolake_dagster.asset_keys import GOLD_OHLCV_1H_KEY
from cryptolake_dagster.quality.results import CheckRecord, append_check_results, record_check_results

EMPTY_DAY = date(2022, 6, 1)  # no trade at all
HISTORY = {date(2022, 6, 10) + timedelta(days=i): n for i, n in enumerate((20, 24, 26, 24, 90))}  # median 24
BAD_DAY = date(2022, 6, 15)
SYMBOL = "QLTYUSDT"
TOPIC = "cryptolake.trades.v1.quality-test"
BAD_AGG_ID = 7_000_999
ANOMALY_CHECK = "row_count_anomaly_gold_fct_ohlcv_1h"
SILVER_CHECK = "soda_silver_ohlcv_1m"
GOLD_CHECK = "soda_gold_fct_ohlcv_1h"
BAD_BAR_CHECK = "positive trade counts, first aggregate id <= last"

_offsets = count(1)


def bronze_trade(agg_id: int, moment: datetime, price: str, *, first_id: int, last_id: int) -> dict[str, Any]:
    quantity = Decimal("0.5")
    return {
        "schema_version": 1, "exchange": "binance", "market": "spot", "symbol": SYMBOL, "base_asset": "QLTY",
        "quote_asset": "USDT", "coin_id": None, "agg_trade_id": agg_id, "first_trade_id": first_id,
        "last_trade_id": last_id, "price": Decimal(price), "quantity": quantity,
        "quote_quantity": Decimal(price) * quantity, "side": "buy", "is_buyer_maker": False, "trade_time": moment,
        "event_time": moment + timedelta(milliseconds=3), "ingest_time": moment + timedelta(milliseconds=40),
        "source": "ws", "kafka_topic": TOPIC, "kafka_partition": 0, "kafka_offset": next(_offsets),
        "bronze_written_at": moment + timedelta(seconds=1),
    }  # fmt: skip


def append_bronze(settings: Settings, rows: list[dict[str, Any]]) -> None:
    table = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def run_day(day: date, **subset: Any) -> dg.ExecuteInProcessResult:
    """The real ``silver_gold_daily`` job for ``day`` (or its subset, e.g. ``asset_check_selection``)."""
    from cryptolake_dagster.definitions import load_definitions

    job = load_definitions().resolve_job_def("silver_gold_daily")
    if subset:
        job = job.get_subset(**subset)
    return job.execute_in_process(partition_key=day.isoformat(), raise_on_error=False)


def recorded(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    table = get_catalog(settings).load_table(QUALITY_CHECK_RESULTS.identifier)
    return table.scan(row_filter=EqualTo("run_id", run_id)).to_arrow().to_pylist()


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """What failed in a run: failed checks with their metadata, failed steps with their error."""
    checks = [f"{e.check_name}: {meta(e)}" for e in result.get_asset_check_evaluations() if not e.passed]
    steps = [
        f"{e.step_key}: {e.step_failure_data.error.message if e.step_failure_data.error else '?'}"
        for e in result.get_step_failure_events()
    ]
    return checks + steps


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {key: value.value for key, value in evaluation.metadata.items()}


def assert_every_result_recorded(settings: Settings, result: dg.ExecuteInProcessResult) -> list[dict[str, Any]]:
    """Every check result of the run (Soda, dbt tests, the anomaly check) is in quality.check_results, with the
    same outcome."""
    rows = recorded(settings, result.run_id)
    by_check = {(r["asset_key"], r["check_name"]): r for r in rows}
    for evaluation in result.get_asset_check_evaluations():
        row = by_check[(evaluation.asset_key.to_user_string(), evaluation.check_name)]
        assert row["outcome"] == ("passed" if evaluation.passed else "failed"), row
        assert row["severity"] == evaluation.severity.value
        assert row["checked_at"].tzinfo is not None and row["run_id"] == result.run_id
    return rows


# --- a day without trades: the old bug (Gold's `row_count > 0` failed while Silver passed) ----------------------


@pytest.fixture(scope="module")
def empty_day(settings, spark) -> dg.ExecuteInProcessResult:
    return run_day(EMPTY_DAY)


def test_a_day_without_trades_passes_gold_checks_and_is_recorded(empty_day, settings) -> None:
    result = empty_day
    checks = evaluations(result)
    assert result.success, failures(result)
    assert {SILVER_CHECK, "soda_silver_trades", GOLD_CHECK, "soda_gold_dim_symbol", ANOMALY_CHECK} <= set(checks)
    assert all(e.passed for e in checks.values())
    gold = meta(checks[GOLD_CHECK])
    assert gold["rows"] == 0 and gold["upstream_rows"] == {"silver.ohlcv_1m": 0}
    assert "too little history" in meta(checks[ANOMALY_CHECK])["reason"]

    rows = assert_every_result_recorded(settings, result)
    types = {r["check_type"] for r in rows}
    assert types == {"soda", "dbt", "row_count_anomaly"}, types
    gold_row = next(r for r in rows if r["check_name"] == GOLD_CHECK)
    assert (gold_row["partition_key"], gold_row["row_count"], gold_row["blocking"]) == (EMPTY_DAY.isoformat(), 0, True)
    assert json.loads(gold_row["metric_values"])["upstream_rows"] == {"silver.ohlcv_1m": 0}


# --- a planted bad day: fails, blocks Gold, is recorded; fixed and re-run: the pass is recorded ------------------


def day_trades(day: date) -> list[dict[str, Any]]:
    """Twelve good trades in hours 9-11 (one per minute), the bad trade alone at 12:30: 13 bars, 4 hours."""
    start = datetime.combine(day, time(9), tzinfo=UTC)
    rows = []
    for hour in range(3):
        for i in range(4):
            agg_id = 7_000_000 + hour * 10 + i
            moment = start + timedelta(hours=hour, minutes=5 * i, seconds=7)
            rows.append(bronze_trade(agg_id, moment, f"{100 + hour + i}.25", first_id=3 * agg_id, last_id=3 * agg_id))
    return rows


def bad_trade(day: date, *, fixed: bool) -> dict[str, Any]:
    moment = datetime.combine(day, time(12, 30, 1), tzinfo=UTC)
    first = 3 * BAD_AGG_ID
    return bronze_trade(BAD_AGG_ID, moment, "101.5", first_id=first, last_id=first + 1 if fixed else first - 100)


@pytest.fixture(scope="module")
def bad_day(settings, spark, empty_day) -> Iterator[dict[str, Any]]:
    """History planted for the days before BAD_DAY; BAD_DAY built with the bad trade, then fixed and re-built."""
    planted = [
        CheckRecord(
            check_name=ANOMALY_CHECK, asset_key=GOLD_OHLCV_1H_KEY.to_user_string(), partition_key=day.isoformat(),
            outcome="passed", severity="WARN", blocking=False, check_type="row_count_anomaly",
            run_id="planted-history", row_count=rows,
        )
        for day, rows in HISTORY.items()
    ]  # fmt: skip
    append_check_results(get_catalog(settings), planted)
    append_bronze(settings, [*day_trades(BAD_DAY), bad_trade(BAD_DAY, fixed=False)])
    failed = run_day(BAD_DAY)
    gold_rows_after_failure = spark.table(GOLD_OHLCV_1H).where(f"symbol = '{SYMBOL}'").count()
    # The fix: the bad Bronze row is replaced by the corrected one (what a re-import or repair of the day does).
    bronze = get_catalog(settings).load_table(BRONZE_TRADES.identifier)
    bronze.delete(And(EqualTo("kafka_topic", TOPIC), EqualTo("agg_trade_id", BAD_AGG_ID)))
    append_bronze(settings, [bad_trade(BAD_DAY, fixed=True)])
    fixed = run_day(BAD_DAY)
    yield {"failed": failed, "gold_rows_after_failure": gold_rows_after_failure, "fixed": fixed}


def test_a_bad_day_fails_its_check_blocks_gold_and_is_recorded(bad_day, settings) -> None:
    result = bad_day["failed"]
    assert not result.success
    checks = evaluations(result)
    silver = checks[SILVER_CHECK]
    assert not silver.passed and silver.severity == dg.AssetCheckSeverity.ERROR
    assert BAD_BAR_CHECK in meta(silver)["failed"]
    # Blocked: no Gold asset was materialized in the run and no Gold check ran.
    assert {"silver/trades", "silver/ohlcv_1m"} <= materialized(result)
    assert not {key for key in materialized(result) if key.startswith("gold/")}
    assert not {name for name in checks if "gold" in name}
    assert bad_day["gold_rows_after_failure"] == 0

    rows = assert_every_result_recorded(settings, result)
    [row] = [r for r in rows if r["check_name"] == SILVER_CHECK]
    assert (row["outcome"], row["severity"], row["blocking"]) == ("failed", "ERROR", True)
    assert row["partition_key"] == BAD_DAY.isoformat() and BAD_BAR_CHECK in row["failed_checks"]
    soda = {c["name"]: c for c in json.loads(row["metric_values"])["checks"]}
    assert soda[BAD_BAR_CHECK]["outcome"] == "fail" and soda[BAD_BAR_CHECK]["value"] == 1


def test_the_fixed_day_passes_and_the_pass_is_recorded(bad_day, settings) -> None:
    result = bad_day["fixed"]
    checks = evaluations(result)
    assert result.success, failures(result)
    assert "gold/fct_ohlcv_1h" in materialized(result)
    gold = meta(checks[GOLD_CHECK])
    assert checks[GOLD_CHECK].passed and gold["rows"] == 4 and gold["upstream_rows"]["silver.ohlcv_1m"] == 13

    rows = assert_every_result_recorded(settings, result)
    assert any(r["check_type"] == "dbt" and r["asset_key"] == "gold/fct_ohlcv_1h" for r in rows)
    # The day's latest Silver record is the pass: the history reads the latest record per day.
    table = get_catalog(settings).load_table(QUALITY_CHECK_RESULTS.identifier)
    history = table.scan(
        row_filter=And(EqualTo("check_name", SILVER_CHECK), EqualTo("partition_key", BAD_DAY.isoformat()))
    ).to_arrow()
    outcomes = [r["outcome"] for r in sorted(history.to_pylist(), key=lambda r: r["checked_at"])]
    assert outcomes == ["failed", "passed"]


def test_the_anomaly_check_compares_the_day_with_the_trailing_median(bad_day, settings) -> None:
    result = bad_day["fixed"]
    anomaly = evaluations(result)[ANOMALY_CHECK]
    figures = meta(anomaly)
    # 4 hourly bars against the median 24 of the days recorded in the 7 calendar days before (the planted five;
    # the empty day is 14 days before, other tests' days years before): outside [12, 48], a warning only.
    assert not anomaly.passed and anomaly.severity == dg.AssetCheckSeverity.WARN and result.success
    assert [(d["day"], d["row_count"]) for d in figures["history"]] == [
        (day.isoformat(), rows) for day, rows in HISTORY.items()
    ]
    assert figures["trailing_median"] == 24.0 and figures["history_days"] == 5
    assert (figures["row_count"], figures["lower_bound"], figures["upper_bound"]) == (4, 12.0, 48.0)
    [row] = [r for r in recorded(settings, result.run_id) if r["check_name"] == ANOMALY_CHECK]
    assert (row["outcome"], row["severity"], row["blocking"], row["row_count"]) == ("failed", "WARN", False, 4)
    assert json.loads(row["metric_values"])["trailing_median"] == 24.0


def test_gold_without_rows_for_a_day_with_silver_bars_fails(bad_day, settings, spark) -> None:
    spark.sql(f"DELETE FROM {GOLD_OHLCV_1H} WHERE symbol = '{SYMBOL}'")
    result = run_day(BAD_DAY, asset_check_selection={dg.AssetCheckKey(GOLD_OHLCV_1H_KEY, GOLD_CHECK)})
    [check] = result.get_asset_check_evaluations()
    figures = meta(check)
    assert not check.passed and not result.success
    assert figures["rows"] == 0 and figures["upstream_rows"] == {"silver.ohlcv_1m": 13}
    [row] = recorded(settings, result.run_id)
    assert (row["check_name"], row["outcome"], row["row_count"]) == (GOLD_CHECK, "failed", 0)
    assert "iff silver.ohlcv_1m has rows" in row["failed_checks"]


# --- the parts on their own: a ranged run's days, a Soda file that cannot be evaluated --------------------------


def test_a_ranged_run_judges_each_day_against_the_days_before_it(empty_day, settings, spark) -> None:
    """Two days without hourly bars after six recorded days of 10 rows: both are anomalies, and the second day's
    history already holds the first (recorded as one row per day)."""
    from cryptolake_dagster.quality.anomaly import RowCountAnomalySpec, day_records, evaluate_row_count_anomaly
    from cryptolake_dagster.resources import IcebergCatalogResource

    first = date(2022, 7, 1)
    planted = [
        CheckRecord(
            check_name=ANOMALY_CHECK, asset_key=GOLD_OHLCV_1H_KEY.to_user_string(),
            partition_key=(first - timedelta(days=i)).isoformat(), outcome="passed", severity="WARN", blocking=False,
            check_type="row_count_anomaly", run_id="planted-history", row_count=10,
        )
        for i in range(1, 7)
    ]  # fmt: skip
    append_check_results(get_catalog(settings), planted)
    spec = RowCountAnomalySpec(asset_key=GOLD_OHLCV_1H_KEY, table=GOLD_OHLCV_1H, time_column="hour")
    window = (
        datetime.combine(first, time(), tzinfo=UTC),
        datetime.combine(first, time(), tzinfo=UTC) + timedelta(days=2),
    )
    evaluation = evaluate_row_count_anomaly(spark, IcebergCatalogResource.from_settings(settings), spec, window)
    day1, day2 = evaluation.per_partition
    assert not evaluation.passed and evaluation.failed_checks == ["2022-07-01", "2022-07-02"]
    # the days recorded in the 7 calendar days before: the six planted ones (this module's earlier days are older)
    assert (day1["row_count"], day1["trailing_median"], day1["history_days"]) == (0, 10.0, 6)
    assert day2["history"][-1] == {"day": "2022-07-01", "row_count": 0} and day2["trailing_median"] == 10.0
    rows = day_records(evaluation, {"check_name": ANOMALY_CHECK, "asset_key": "gold/fct_ohlcv_1h",
                                     "partition_key": "2022-07-01...2022-07-02", "severity": "WARN",
                                     "blocking": False, "check_type": "row_count_anomaly", "run_id": "r"})  # fmt: skip
    assert [(r.partition_key, r.outcome, r.row_count) for r in rows] == [
        ("2022-07-01", "failed", 0),
        ("2022-07-02", "failed", 0),
    ]


def test_a_ranged_run_records_its_range_and_each_day(empty_day, settings) -> None:
    """A ranged run (two days, Dagster's range tags) of Gold's Soda and anomaly checks: the Soda check scans the
    range once and records it as ``first...last``; the anomaly check records each day."""
    from cryptolake_dagster.definitions import load_definitions

    first, last = EMPTY_DAY.isoformat(), (EMPTY_DAY + timedelta(days=1)).isoformat()
    selection = {dg.AssetCheckKey(GOLD_OHLCV_1H_KEY, name) for name in (GOLD_CHECK, ANOMALY_CHECK)}
    job = load_definitions().resolve_job_def("silver_gold_daily").get_subset(asset_check_selection=selection)
    result = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    )
    assert result.success, failures(result)
    gold = meta(evaluations(result)[GOLD_CHECK])
    assert gold["rows"] == 0 and gold["window"].startswith(f"[{first}T00:00:00+00:00, ")
    rows = sorted((r["check_name"], r["partition_key"]) for r in recorded(settings, result.run_id))
    assert rows == [(ANOMALY_CHECK, first), (ANOMALY_CHECK, last), (GOLD_CHECK, f"{first}...{last}")]


def test_a_soda_file_that_cannot_be_evaluated_is_an_error_not_a_pass(empty_day, spark, tmp_path) -> None:
    from cryptolake_dagster.quality.asset_checks import SodaCheckSpec, evaluate_soda_spec

    soda_file = tmp_path / "broken.yml"
    soda_file.write_text("checks for fct_ohlcv_1h:\n  - failed rows:\n      fail condition: no_such_column > 0\n")
    spec = SodaCheckSpec(asset_key=GOLD_OHLCV_1H_KEY, table=GOLD_OHLCV_1H, soda_file=soda_file, partition_column="hour")
    window = (
        datetime.combine(EMPTY_DAY, time(), tzinfo=UTC),
        datetime.combine(EMPTY_DAY, time(), tzinfo=UTC) + timedelta(days=1),
    )
    evaluation = evaluate_soda_spec(spark, spec, window)
    assert evaluation.errored and not evaluation.passed and evaluation.outcome == "error"
    assert any("no_such_column" in error for error in evaluation.metadata["soda_errors"])


# --- recording never fails a check ------------------------------------------------------------------------------


def test_a_failed_recording_is_logged_not_raised(tmp_path) -> None:
    catalog = SqlCatalog("elsewhere", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path}")
    record = CheckRecord(
        check_name="c", asset_key="gold/x", partition_key=None, outcome="passed", severity="ERROR", blocking=True,
        check_type="soda", run_id="r",
    )  # fmt: skip
    assert record_check_results(catalog, [record]) is False  # no quality.check_results there


# --- what every Gold table gets ---------------------------------------------------------------------------------


def test_every_gold_table_has_a_freshness_policy_and_a_blocking_soda_check(settings) -> None:
    from cryptolake_dagster.definitions import load_definitions
    from cryptolake_dagster.defs.gold.checks import GOLD_CHECK_SPECS

    graph = load_definitions().resolve_asset_graph()
    gold = [key for key in graph.get_all_asset_keys() if key.path[0] == "gold"]
    assert gold and all(graph.get(key).freshness_policy is not None for key in gold)
    checks = {key.asset_key: key.name for key in graph.asset_check_keys if key.name.startswith("soda_gold_")}
    assert sorted(s.asset_key.to_user_string() for s in GOLD_CHECK_SPECS) == sorted(k.to_user_string() for k in gold)
    for spec in GOLD_CHECK_SPECS:
        assert checks[spec.asset_key] == spec.check_name and spec.soda_file.is_file()
        assert graph.get_check_spec(dg.AssetCheckKey(spec.asset_key, spec.check_name)).blocking
    assert dg.AssetKey(["quality", "check_results"]) in graph.get_all_asset_keys()
