"""Ranged backfill runs on real Spark, Iceberg and dbt: one run spans many days and gives what one run per day gives.

* Two lakehouses of their own get the same Bronze trades (two trading days around one without any, duplicates,
  rows Silver rejects, trades on the first and last millisecond of a day); ``cryptolake backfill`` builds one with
  one run per day (``--days-per-run 1``, the previous behaviour) and the other with one ranged run (the default).
  Every Silver and Gold table is then compared row for row (build-time columns left out).
* A year of days of which two hold trades is one ranged run in the tests' lakehouse: every day of every asset is
  materialized in the instance, and only the two days with data are rebuilt (the others are skipped from Iceberg
  metadata).
* What the backfill reads from the definitions: the most days per run of each job, and the Bronze tables whose
  data files decide which days Silver rebuilds (taken from the Silver SQL itself).
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_BACKFILL, SILVER_OHLCV_1M, SILVER_TRADES
from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY, SILVER_TRADES_KEY
from cryptolake_dagster.backfill import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    BackfillEventLogStorage,
    backfill_instance,
    max_days_per_run,
    run_backfill,
    run_ranges,
)
from cryptolake_dagster.instance import prepare_dagster_home
from cryptolake_dagster_tests.silver.test_silver_trades import append_bronze, bronze_row, copy_of

CLI = [str(Path(sys.executable).parent / "cryptolake"), "backfill"]
FIRST, EMPTY, LAST = (datetime(2024, 2, day, tzinfo=UTC) for day in (5, 6, 7))
YEAR = ("2018-01-01", "2018-12-31")  # no other test writes 2018
YEAR_DAYS = (datetime(2018, 3, 4, tzinfo=UTC), datetime(2018, 9, 17, tzinfo=UTC))


def _trades(days: tuple[datetime, ...], symbols: tuple[str, ...], seed: int) -> list[dict[str, Any]]:
    """Bronze rows of ``symbols`` on ``days`` (spot and USD-M), with duplicates, bad rows and day-edge trades."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for s, symbol in enumerate(symbols):
        for m, market in enumerate(("spot", "usdm_futures")):
            agg_id = 1_000_000 * (10 * s + m + 1)
            price = Decimal(rng.randint(1_000, 60_000))
            for day in days:
                moments = sorted(
                    day + timedelta(hours=9, milliseconds=rng.randint(0, 3 * 3_600_000)) for _ in range(40)
                )
                # the day's first and last millisecond belong to it
                for moment in [day, *moments, day + timedelta(days=1, milliseconds=-1)]:
                    agg_id += 1
                    price = max(Decimal("0.01"), price + Decimal(rng.randint(-5_000, 5_000)) / 100)
                    rows.append(
                        bronze_row(symbol, agg_id, price, Decimal(rng.randint(1, 10**8)) / 10**6, moment,
                                   market=market, buyer_maker=rng.random() < 0.5, partition=rng.randint(0, 2))
                    )  # fmt: skip
    rows += [copy_of(row) for row in rng.sample(rows, 6)]  # redeliveries: Silver keeps one copy
    rows.append(bronze_row(symbols[0], 9_000_001, "0", "1", days[0] + timedelta(hours=12)))  # rejected: price
    rows.append(bronze_row(symbols[0], 9_000_002, "100", "-2", days[-1] + timedelta(hours=12)))  # rejected: qty
    return rows


def _lakehouse(root: Path) -> Settings:
    """A lakehouse of its own under ``root`` (the embedded profile), bootstrapped."""
    settings = Settings(state_dir=root / "state", profile="local", catalog_uri=None, warehouse=None)
    bootstrap_lakehouse(settings)
    return settings


def _backfill_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(settings.state_dir)}
    for key in ("CRYPTOLAKE_PROFILE", "CRYPTOLAKE_CATALOG_URI", "CRYPTOLAKE_WAREHOUSE", "DAGSTER_HOME"):
        env.pop(key, None)
    done = subprocess.run([*CLI, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-6000:]
    return done


def _contents(settings: Settings, since: datetime) -> dict[str, list[tuple]]:
    """Every Silver and Gold table's rows, sorted, without the columns holding build times (every value >= since)."""
    catalog = get_catalog(settings)
    tables = {}
    for namespace in ("silver", "gold"):
        for identifier in catalog.list_tables(namespace):
            name = ".".join(identifier)
            arrow = catalog.load_table(name).scan().to_arrow()
            build_times = [
                field.name
                for field in arrow.schema
                if pa.types.is_timestamp(field.type)
                and (values := [v for v in arrow.column(field.name).to_pylist() if v is not None])
                and min(values) >= since
            ]
            rows = arrow.drop_columns(build_times).to_pylist()
            tables[name] = sorted(tuple((k, repr(v)) for k, v in sorted(row.items())) for row in rows)
    return tables


def test_a_ranged_run_gives_the_tables_of_one_run_per_day(tmp_path: Path) -> None:
    rows = _trades((FIRST, LAST), ("RNGUSDT", "RNHUSDT"), seed=20240205)
    per_day, ranged = _lakehouse(tmp_path / "per_day"), _lakehouse(tmp_path / "ranged")
    append_bronze(per_day, rows)
    append_bronze(ranged, rows)  # the same rows, Kafka offsets included
    started = datetime.now(UTC)
    days = ["--from", f"{FIRST:%Y-%m-%d}", "--to", f"{LAST:%Y-%m-%d}"]

    one_per_day = _backfill_cli(per_day, *days, "--days-per-run", "1")
    steps = re.findall(r"\] (\d)/3 days \((\d+)%, 0 failed\) · (\S+) ok in ", one_per_day.stderr)
    assert steps == [
        ("1", "33", f"{FIRST:%Y-%m-%d}"),
        ("2", "67", f"{EMPTY:%Y-%m-%d}"),
        ("3", "100", f"{LAST:%Y-%m-%d}"),
    ]
    assert "3 days ok, 0 failed (3 runs)" in one_per_day.stderr

    one_run = _backfill_cli(ranged, *days)
    assert re.search(r"3 days, \S+ \.\. \S+, 1 run of up to 3 days", one_run.stderr), one_run.stderr[-3000:]
    assert re.search(r"\] 3/3 days \(100%, 0 failed\) · \S+ \.\. \S+ \(3 days\) ok in .* x 3 days materialized",
                     one_run.stderr)  # fmt: skip
    assert "3 days ok, 0 failed (1 run)" in one_run.stderr
    instance = dg.DagsterInstance.from_config(str(ranged.dagster_home))
    [run] = instance.get_runs()
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (f"{FIRST:%Y-%m-%d}", f"{LAST:%Y-%m-%d}")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    metadata = instance.get_latest_materialization_event(SILVER_TRADES_KEY).asset_materialization.metadata
    assert (metadata["days"].value, metadata["days_rebuilt"].value) == (3, 2)  # the empty day: skipped

    want, got = _contents(per_day, started), _contents(ranged, started)
    assert sorted(got) == sorted(want)
    for table in ("silver.trades", "silver.trades_quarantine", "silver.ohlcv_1m", "gold.fct_ohlcv_1h"):
        assert want[table], f"{table} is empty: the comparison would prove nothing"
    assert len(want["silver.trades_quarantine"]) == 2
    for table in want:
        assert got[table] == want[table], table


@pytest.fixture(scope="module")
def a_year(settings, spark, tmp_path_factory) -> dict[str, Any]:
    """2018 with trades on two days only, backfilled with the defaults: one ranged run of 365 days."""
    rows = _trades(YEAR_DAYS, ("YRAUSDT",), seed=2018)
    append_bronze(settings, rows)
    home = prepare_dagster_home(Settings(state_dir=tmp_path_factory.mktemp("year") / "state"))
    instance = backfill_instance(home)
    from cryptolake_dagster.definitions import load_definitions

    output = io.StringIO()
    outcomes = run_backfill(load_definitions(), "silver_gold_daily", *YEAR, instance, stream=output)
    instance.dispose()
    return {"rows": rows, "home": home, "outcomes": outcomes, "output": output.getvalue()}


def test_a_year_of_mostly_empty_days_is_one_ranged_run(a_year, settings) -> None:
    [outcome] = a_year["outcomes"]
    assert outcome.success, a_year["output"]
    assert (outcome.first, outcome.last, outcome.days) == (*YEAR, 365)
    assert "1 run of up to 365 days" in a_year["output"] and "365 days ok, 0 failed (1 run)" in a_year["output"]
    # a line per finished step while the run goes on
    assert re.search(r"2018-01-01 \.\. 2018-12-31: step \d+/\d+ gold_dbt_models ok", a_year["output"])

    # Read with Dagster's own storage, as the UI does: every day of every asset of the job is materialized.
    instance = dg.DagsterInstance.from_config(str(a_year["home"]))
    [run] = instance.get_runs()
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == YEAR
    days = {f"{datetime(2018, 1, 1) + timedelta(days=n):%Y-%m-%d}" for n in range(365)}
    for key in (SILVER_TRADES_KEY, SILVER_OHLCV_1M_KEY, dg.AssetKey(["gold", "fct_ohlcv_1h"])):
        assert instance.get_materialized_partitions(key) == days, key
    metadata = instance.get_latest_materialization_event(SILVER_TRADES_KEY).asset_materialization.metadata
    assert (metadata["days"].value, metadata["days_rebuilt"].value) == (365, 2)

    # The two days were really built: every valid trade once, bars for their minutes only.
    trades = get_catalog(settings).load_table(SILVER_TRADES.identifier).scan().to_arrow().to_pylist()
    ours = [t for t in trades if t["symbol"] == "YRAUSDT"]
    valid = {(r["market"], r["agg_trade_id"]) for r in a_year["rows"] if r["price"] > 0 and r["quantity"] > 0}
    assert sorted((t["market"], t["agg_trade_id"]) for t in ours) == sorted(valid)
    bars = get_catalog(settings).load_table(SILVER_OHLCV_1M.identifier).scan().to_arrow().to_pylist()
    assert {b["minute"].date() for b in bars if b["symbol"] == "YRAUSDT"} == {d.date() for d in YEAR_DAYS}


def test_runs_span_what_the_assets_backfill_policies_allow(settings) -> None:
    from cryptolake_dagster.definitions import load_definitions

    defs = load_definitions()
    # Silver and dbt handle any range: by default a backfill is one run
    assert max_days_per_run(defs.resolve_job_def("silver_gold_daily")) == (None, None)
    # the batch sources fetch per day over HTTP: one day per run
    assert max_days_per_run(defs.resolve_job_def("batch_sources_daily"))[0] == 1
    assert [len(r) for r in run_ranges([f"d{n}" for n in range(800)], 366)] == [366, 366, 68]


def test_silver_skips_days_by_the_bronze_tables_its_sql_reads() -> None:
    from cryptolake_dagster.defs.silver.assets import tables_read_by
    from cryptolake_dagster.defs.silver.trades_sql import checked_query

    query = checked_query(FIRST, LAST, LAST)
    assert {t.identifier for t in tables_read_by(query)} == {
        BRONZE_TRADES.identifier,
        BRONZE_TRADES_BACKFILL.identifier,
    }


def test_the_backfill_instance_writes_dagster_s_own_sqlite_files(tmp_path: Path) -> None:
    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2020-01-01", end_offset=1))
    def numbers() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"n": 1})

    @dg.asset_check(asset=numbers)
    def positive() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    job = dg.Definitions(assets=[numbers], asset_checks=[positive], jobs=[dg.define_asset_job("numbers_job")])
    tags = {RANGE_START_TAG: "2020-01-01", RANGE_END_TAG: "2020-01-31"}
    written = {}
    for name, open_instance in (
        ("backfill", backfill_instance),
        ("dagster", lambda h: dg.DagsterInstance.from_config(str(h))),
    ):
        home = prepare_dagster_home(Settings(state_dir=tmp_path / name))
        instance = open_instance(home)
        assert (type(instance.event_log_storage) is BackfillEventLogStorage) == (name == "backfill")
        assert job.resolve_job_def("numbers_job").execute_in_process(instance=instance, tags=tags).success
        instance.dispose()
        stock = dg.DagsterInstance.from_config(str(home))  # what the webserver and the daemon open
        [run] = stock.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        records = stock.fetch_materializations(dg.AssetKey("numbers"), limit=100).records
        checks = stock.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("numbers"), "positive"), limit=100
        )
        written[name] = (
            sorted(stock.get_materialized_partitions(dg.AssetKey("numbers"))),
            sorted((r.partition_key, r.asset_materialization.metadata["n"].value) for r in records),
            sorted(((c.partition, c.status.value) for c in checks), key=str),
            sorted(sorted(tags) for tags in stock.event_log_storage.get_event_tags_for_asset(dg.AssetKey("numbers"))),
        )
        stock.dispose()
    # the same days, materializations and per-day check rows as Dagster's own storage writes
    assert written["backfill"] == written["dagster"]
    assert len(written["backfill"][0]) == 31 and len(written["backfill"][1]) == 31
