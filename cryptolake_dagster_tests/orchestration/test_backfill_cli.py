"""``cryptolake backfill`` as a user runs it: a subprocess running a real partitioned job (the batch sources against
local servers speaking the real payload shapes: one Dagster run per day, their backfill policy), progress lines,
runs in the instance; requests it refuses, and why. Ranged runs: ``test_ranged_backfill.py``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_FEAR_GREED, SILVER_DAILY_PRICES
from cryptolake_dagster.backfill import BACKFILL_TAG
from simulators.batch_apis import run_in_thread as run_batch_sources
from simulators.binance import AggTrade
from simulators.binance import run_in_thread as run_exchange_simulator

DAYS = [date(2024, 4, 8), date(2024, 4, 9)]
CLI = [str(Path(sys.executable).parent / "cryptolake"), "backfill"]
PROGRESS = re.compile(r"^backfill batch_sources_daily \[[#-]{20}\] (\d)/2 days \((\d+)%, (\d) failed\) · (.*) · ")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _rows(settings, table, day: date) -> list[dict]:
    rows = get_catalog(settings).load_table(table.identifier).scan().to_arrow().to_pylist()
    return [row for row in rows if row["day"] == day]


def test_backfill_runs_one_day_after_another_with_progress(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path / "state")  # a lakehouse and Dagster instance of its own
    with (
        run_batch_sources(seed=5) as sources,
        run_exchange_simulator(symbols=("BTCUSDT",), max_trades=0, rate=1.0) as exchange,
    ):
        for n, day in enumerate(DAYS):
            moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=3)
            exchange.server.publish_trade(
                AggTrade("BTCUSDT", 10 + n, "64000.10", "0.500", 20 + n, 20 + n, _ms(moment), _ms(moment), False)
            )
        env = {
            **os.environ,
            "CRYPTOLAKE_STATE_DIR": str(settings.state_dir),
            "CRYPTOLAKE_COINGECKO_BASE_URL": sources.coingecko_url,
            "CRYPTOLAKE_FEAR_GREED_BASE_URL": sources.fear_greed_url,
            "CRYPTOLAKE_BINANCE_REST_URL": exchange.rest_url,
            "CRYPTOLAKE_SYMBOLS": "BTCUSDT",
            "CRYPTOLAKE_MARKETS": "spot",
        }
        command = [*CLI, "--job", "batch_sources_daily", "--from", str(DAYS[0]), "--to", str(DAYS[1])]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]

    lines = [PROGRESS.match(line) for line in done.stderr.splitlines()]
    steps = [match for match in lines if match]
    assert [(m.group(1), m.group(2), m.group(3)) for m in steps] == [("1", "50", "0"), ("2", "100", "0")]
    for match, day in zip(steps, DAYS, strict=True):
        assert match.group(4).startswith(f"{day} ok in ") and "5 assets materialized" in match.group(4)
    assert "one run per day" in done.stderr and "2 days ok, 0 failed (2 runs)" in done.stderr

    (backfill_id,) = set(re.findall(r"backfill batch_sources_daily (\w{8}): 2 days", done.stderr))
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
    assert sorted(run.tags["dagster/partition"] for run in runs) == [str(day) for day in DAYS]
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}

    for day in DAYS:  # the runs really wrote each day
        assert len(_rows(settings, BRONZE_FEAR_GREED, day)) == 1
        assert {row["coin_id"] for row in _rows(settings, SILVER_DAILY_PRICES, day)} == {"bitcoin"}


def test_backfill_outside_the_partitions_says_what_exists() -> None:
    done = subprocess.run([*CLI, "--from", "2016-12-31", "--to", "2017-01-02"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "'2016-12-31' is not a partition of silver_gold_daily" in done.stderr
    assert "available: 2017-01-01 .. " in done.stderr

    unknown = subprocess.run([*CLI, "--job", "nope", "--from", "2024-01-01"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "choose one of: " in unknown.stderr
    assert {"batch_sources_daily", "silver_gold_daily"} <= set(unknown.stderr.rsplit(": ", 1)[1].strip().split(", "))

    # The batch sources fetch per day from HTTP APIs: their assets' backfill policy allows one day per run.
    ranged = [*CLI, "--job", "batch_sources_daily", "--from", "2024-01-01", "--to", "2024-01-05", "--days-per-run", "5"]
    too_many = subprocess.run(ranged, capture_output=True, text=True)
    assert too_many.returncode == 2
    assert "--days-per-run 5: a run of batch_sources_daily spans at most 1 day" in too_many.stderr
