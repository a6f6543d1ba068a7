"""The Gold star schema built from history planted in a temp lakehouse by the orchestrator's own run (one ranged
run of every Gold asset: a real ``dbt build`` and every check of every Gold table, Soda and dbt tests), every number
recomputed here independently (plain ``Decimal`` for prices and averages, ``math`` / ``statistics`` for returns and
volatility):

* ``fct_market_daily``'s calendar windows over a series with a 15-day gap and a coin that starts later (and a ROWS
  window shown to give other numbers);
* ``fct_price_daily``'s precedence over days that several sources cover (our trades > Binance klines > CSV >
  CoinGecko), and a day of our trades that is not whole (an id hole) falling back to the kline;
* the multi-interval bars (5m, 15m, 1h, 4h, 1d) against a recomputation from the 1-minute bars;
* ``fct_futures_daily``'s basis, ``dim_coin``'s all-time high and low and history span, ``dim_date``'s span;
* every Gold table has checks and they all pass, their results recorded in quality.check_results; a bad bar planted
  afterwards (a duplicate key with high < low) fails its table's Soda check and is recorded;
* a minute holding more aggregate trades than its ids span is not complete, and its status says so.
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from pyiceberg.expressions import EqualTo

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake.tables import QUALITY_CHECK_RESULTS, SILVER_OHLCV_1M
from cryptolake_dagster_tests.dbt.gold_checks_run import BAD_CHECK
from cryptolake_dagster_tests.dbt.gold_history import (
    BTC_LAST,
    COINGECKO_ONLY,
    E8,
    E12,
    ETH_FIRST,
    GAP,
    HOLED_DAY,
    INGESTED,
    TRADES_DAY,
    at,
    days_between,
    plant_history,
)
from cryptolake_dagster_tests.dbt.test_dbt_project import BUILD_TIMEOUT_S, _java_processes_of
from cryptolake_platform.data_dictionary import MARTS_DIR

GOLD_TABLES = ("fct_price_daily", "fct_market_daily", "fct_futures_daily", "dim_coin", "dim_date", "dim_symbol",
               "fct_ohlcv_5m", "fct_ohlcv_15m", "fct_ohlcv_1h", "fct_ohlcv_4h", "fct_ohlcv_1d", "fct_ohlcv_1m",
               "fct_completeness_1m", "fct_completeness_daily")  # fmt: skip
#: A symbol of no coin (no daily price) whose second minute holds one aggregate trade more than its ids span (a
#: late trade with an out-of-order id); kept apart from the tables the recomputations read.
EXTRA_SYMBOL = "XTRAUSDT"
EXTRA_MINUTES = (at(TRADES_DAY) + timedelta(hours=5), at(TRADES_DAY) + timedelta(hours=5, minutes=1))
ANOMALY_CHECK = "row_count_anomaly_gold_fct_ohlcv_1h"  # a warning judged against recorded days (none here)


def _extra_trades_bars() -> list[dict[str, Any]]:
    """Two Silver bars of EXTRA_SYMBOL, one raw trade per aggregate (raw id = aggregate id + 4000): aggregate ids
    1000..1004 (five trades), then 1005..1006 and the late 1002 (three trades where the ids after the first bar's
    span two)."""
    price, quantity = Decimal("2.5"), Decimal("0.4")
    bars = []
    for minute, (first, last, count) in zip(EXTRA_MINUTES, ((1000, 1004, 5), (1002, 1006, 3)), strict=True):
        bars.append({
            "exchange": "binance", "market": "spot", "symbol": EXTRA_SYMBOL, "minute": minute, "open": price,
            "high": price, "low": price, "close": price, "volume": quantity * count,
            "quote_volume": price * quantity * count, "trade_count": count, "vwap": price,
            "buy_volume": quantity * count, "sell_volume": Decimal(0), "first_agg_trade_id": first,
            "last_agg_trade_id": last, "built_at": INGESTED, "agg_trade_count": count,
            "taker_buy_quote_volume": price * quantity * count, "first_trade_id": 4000 + first,
            "last_trade_id": 4000 + last,
        })  # fmt: skip
    return bars


def _run_gold_with_checks(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """``gold_checks_run`` in a process of its own on the lakehouse of ``settings``; returns its report."""
    out = tmp_path / "runs.json"
    first, last = COINGECKO_ONLY[0].isoformat(), BTC_LAST.isoformat()
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(settings.state_dir),
           "CRYPTOLAKE_SPARK_SHUFFLE_PARTITIONS": str(settings.spark_shuffle_partitions),
           "DAGSTER_HOME": str(tmp_path / "dagster")}  # fmt: skip
    for key in ("CRYPTOLAKE_PROFILE", "CRYPTOLAKE_CATALOG_URI", "CRYPTOLAKE_WAREHOUSE"):
        env.pop(key, None)
    (tmp_path / "dagster").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "cryptolake_dagster_tests.dbt.gold_checks_run", str(out), first, last,
               TRADES_DAY.isoformat()]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=2 * BUILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group (the runs, dbt and their Spark JVMs)
            proc.wait()
    deadline = time.monotonic() + 20
    while (alive := _java_processes_of(settings.state_dir.resolve())) and time.monotonic() < deadline:
        time.sleep(0.2)
    for leftover in alive:  # started by our subprocess (its command line names our temp state dir)
        leftover.kill()
    assert proc.returncode == 0 and out.is_file(), output[-12_000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> dict[str, Any]:
    """Plant the history, build Gold with its checks in one ranged run of the orchestrator (then the bad bar's
    run), return what was planted, the runs' report and every Gold table read back (EXTRA_SYMBOL's rows apart)."""
    tmp_path = tmp_path_factory.mktemp("gold")
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)
    prepare_spark_environment(settings)
    catalog = get_catalog(settings)
    planted = plant_history(catalog)
    silver = catalog.load_table(SILVER_OHLCV_1M.identifier)
    silver.append(pa.Table.from_pylist(_extra_trades_bars(), schema=silver.schema().as_arrow()))
    runs = _run_gold_with_checks(settings, tmp_path)
    tables, schemas, extra = {}, {}, {}
    for name in GOLD_TABLES:
        table = catalog.load_table(f"gold.{name}")
        rows = table.scan().to_arrow().to_pylist()
        tables[name] = [row for row in rows if row.get("symbol") != EXTRA_SYMBOL]
        extra[name] = [row for row in rows if row.get("symbol") == EXTRA_SYMBOL]
        schemas[name] = [field.name for field in table.schema().fields]
    return {**planted, "tables": tables, "schemas": schemas, "extra": extra, "runs": runs, "settings": settings}


def _expected_prices(gold: dict) -> dict[tuple[str, date], tuple[str, Decimal, Decimal | None]]:
    """(coin, day) -> (source, close, base volume) by the documented precedence, from what was planted (later
    assignments win: lowest precedence first)."""
    expected: dict[tuple[str, date], tuple[str, Decimal, Decimal | None]] = {}
    for day, price in gold["coingecko"].items():
        expected[("bitcoin", day)] = ("coingecko", price, None)
    for day, bar in gold["csv"].items():
        expected[("bitcoin", day)] = ("csv", bar["close"], bar["volume"])
    for day, bar in gold["btc"].items():
        expected[("bitcoin", day)] = ("binance_klines", bar["close"], bar["volume"])
    for day, bar in gold["eth"].items():
        expected[("ethereum", day)] = ("binance_klines", bar["close"], bar["volume"])
    ours = sorted(gold["spot_bars"], key=lambda b: b["minute"])
    expected[("bitcoin", TRADES_DAY)] = ("trades", ours[-1]["close"], sum(b["volume"] for b in ours))
    return expected


def test_price_daily_follows_the_source_precedence(gold) -> None:
    rows = gold["tables"]["fct_price_daily"]
    actual = {(r["coin_id"], r["day"]): (r["source"], r["close"], r["volume"]) for r in rows}
    assert len(actual) == len(rows)
    assert actual == _expected_prices(gold)
    assert not any(GAP[0] <= day <= GAP[1] for _, day in actual)  # days no source covers are absent
    by_key = {(r["coin_id"], r["day"]): r for r in rows}
    assert by_key[("bitcoin", date(2023, 1, 3))]["source_symbol"] == "BTCUSDT"  # klines over CSV
    assert by_key[("bitcoin", date(2022, 12, 3))]["source_exchange"] == "bitstamp"
    assert by_key[("bitcoin", HOLED_DAY)]["source"] == "binance_klines"  # our day has a hole


def _window(series: dict[date, Decimal], day: date, days: int) -> list[Decimal]:
    return [series[d] for d in sorted(series) if day - timedelta(days=days - 1) <= d <= day]


def test_market_daily_windows_are_calendar_windows(gold) -> None:
    rows = {(r["coin_id"], r["day"]): r for r in gold["tables"]["fct_market_daily"]}
    closes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    volumes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for (coin, day), (_, close, volume) in _expected_prices(gold).items():
        closes[coin][day] = close
        if volume is not None:
            volumes[coin][day] = volume
    assert set(rows) == {(coin, day) for coin in closes for day in closes[coin]}
    for coin, series in closes.items():
        log_returns = {
            d: math.log(float(series[d]) / float(series[d - timedelta(days=1)]))
            for d in series if d - timedelta(days=1) in series
        }  # fmt: skip
        for day in series:
            row = rows[(coin, day)]
            for days in (7, 30, 200):
                window = _window(series, day, days)
                assert row[f"ma_{days}d_days"] == len(window), (coin, day, days)
                assert row[f"ma_{days}d"] == (sum(window) / len(window)).quantize(E12, ROUND_HALF_UP), (coin, day)
                assert row[f"min_close_{days}d"] <= row[f"ma_{days}d"] <= row[f"max_close_{days}d"]
            for days in (7, 30):
                returns = [log_returns[d] for d in sorted(log_returns) if day - timedelta(days=days - 1) <= d <= day]
                assert row[f"volatility_{days}d_returns"] == len(returns)
                if len(returns) < 2:
                    assert row[f"volatility_{days}d"] is None
                else:
                    expected = statistics.stdev(returns) * math.sqrt(365)
                    assert math.isclose(row[f"volatility_{days}d"], expected, rel_tol=1e-9), (coin, day, days)
            if day in log_returns:
                assert math.isclose(row["log_return"], log_returns[day], rel_tol=1e-12, abs_tol=1e-15)
                previous = series[day - timedelta(days=1)]
                assert math.isclose(row["simple_return"], float(series[day]) / float(previous) - 1, abs_tol=1e-12)
            else:
                assert row["log_return"] is None and row["simple_return"] is None
            window = _window(volumes[coin], day, 7)
            assert row["avg_volume_7d_days"] == len(window)
            if window:
                assert row["avg_volume_7d"] == (sum(window) / len(window)).quantize(E12, ROUND_HALF_UP)
            greed = gold["greed"].get(day)
            assert row["fear_greed_value"] == greed
            if greed is not None:
                assert math.isclose(row["sentiment_score"], (greed - 50) / 50)
            assert row["market_cap"] == (gold["caps"].get(day) if coin == "bitcoin" else None)

    # Right after the gap a ROWS window (the last 7 rows) would reach back before the gap: other numbers.
    btc = closes["bitcoin"]
    after_gap = GAP[1] + timedelta(days=3)
    rows_window = [btc[d] for d in sorted(btc) if d <= after_gap][-7:]
    rows_ma = (sum(rows_window) / 7).quantize(E12, ROUND_HALF_UP)
    assert rows[("bitcoin", after_gap)]["ma_7d_days"] == 3
    assert rows[("bitcoin", after_gap)]["ma_7d"] != rows_ma
    # ETH starts later: its first day's windows hold that one day
    first_eth = rows[("ethereum", ETH_FIRST)]
    assert (first_eth["ma_200d_days"], first_eth["ma_200d"]) == (1, gold["eth"][ETH_FIRST]["close"])


def _bucket(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@pytest.mark.parametrize(
    ("table", "seconds", "time_column"),
    [("fct_ohlcv_5m", 300, "open_time"), ("fct_ohlcv_15m", 900, "open_time"), ("fct_ohlcv_1h", 3600, "hour"),
     ("fct_ohlcv_4h", 14_400, "open_time"), ("fct_ohlcv_1d", 86_400, "open_time")],
)  # fmt: skip
def test_multi_interval_bars_equal_a_recomputation(gold, table, seconds, time_column) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for bar in gold["minutes"]:
        groups[(bar["market"], bar["symbol"], _bucket(bar["minute"], seconds))].append(bar)
    actual = {(r["market"], r["symbol"], r[time_column]): r for r in gold["tables"][table]}
    assert set(actual) == set(groups)
    for key, members in groups.items():
        members.sort(key=lambda b: b["minute"])
        volume = sum(b["volume"] for b in members)
        quote = sum(b["quote_volume"] for b in members)
        want = {
            "open": members[0]["open"], "high": max(b["high"] for b in members), "low": min(b["low"] for b in members),
            "close": members[-1]["close"], "volume": volume, "quote_volume": quote,
            "trade_count": sum(b["trade_count"] for b in members), "minute_count": len(members),
            "vwap": (quote / volume).quantize(E8, ROUND_HALF_UP), "buy_volume": sum(b["buy_volume"] for b in members),
            "agg_trade_count": sum(b["agg_trade_count"] for b in members),
            "first_agg_trade_id": members[0]["first_agg_trade_id"], "last_agg_trade_id": members[-1]["last_agg_trade_id"],
        }  # fmt: skip
        got = actual[key]
        assert {k: got[k] for k in want} == want, key
        # the bar holding the minute the id hole is charged to is incomplete, every other bar complete
        holed = any(b["market"] == "spot" and b["minute"] == gold["holed_minute"] for b in members)
        assert (got["complete"], got["incomplete_minutes"]) == (not holed, int(holed)), key


def test_futures_daily_has_the_basis_to_spot(gold) -> None:
    rows = {r["day"]: r for r in gold["tables"]["fct_futures_daily"] if r["symbol"] == "BTCUSDT"}
    assert set(rows) == {TRADES_DAY}
    row = rows[TRADES_DAY]
    futures = sorted(gold["futures_bars"], key=lambda b: b["minute"])
    spot = sorted(gold["spot_bars"], key=lambda b: b["minute"])
    assert row["close"] == futures[-1]["close"] and row["spot_close"] == spot[-1]["close"]
    assert row["basis"] == futures[-1]["close"] - spot[-1]["close"]
    buy = sum(b["buy_volume"] for b in futures)
    sell = sum(b["sell_volume"] for b in futures)
    assert math.isclose(row["taker_imbalance"], float(buy - sell) / float(buy + sell), rel_tol=1e-9)
    assert row["price_range"] == max(b["high"] for b in futures) - min(b["low"] for b in futures)


def test_dimensions(gold) -> None:
    coins = {r["coin_id"]: r for r in gold["tables"]["dim_coin"]}
    prices = [r for r in gold["tables"]["fct_price_daily"] if r["coin_id"] == "bitcoin"]
    highs = {r["day"]: (r["high"] if r["high"] is not None else r["close"]) for r in prices}
    lows = {r["day"]: (r["low"] if r["low"] is not None else r["close"]) for r in prices}
    btc = coins["bitcoin"]
    assert (btc["first_day"], btc["last_day"]) == (COINGECKO_ONLY[0], BTC_LAST)
    assert btc["all_time_high"] == max(highs.values()) and highs[btc["all_time_high_day"]] == btc["all_time_high"]
    assert btc["all_time_low"] == min(lows.values()) and lows[btc["all_time_low_day"]] == btc["all_time_low"]
    assert btc["base_asset"] == "BTC" and "BTCUSDT" in btc["symbols"] and "BTCUSD" in btc["symbols"]
    assert coins["ethereum"]["first_day"] == ETH_FIRST
    assert coins["solana"]["first_day"] is None and coins["solana"]["days_with_price"] == 0
    days = sorted(r["date_day"] for r in gold["tables"]["dim_date"])
    assert days[0] == COINGECKO_ONLY[0] and days == days_between(days[0], days[-1]) and days[-1] >= date.today()
    symbols = {(r["exchange"], r["market"], r["symbol"]): r for r in gold["tables"]["dim_symbol"]}
    assert symbols[("bitstamp", "spot", "BTCUSD")]["quote_asset"] == "USD"
    assert symbols[("binance", "usdm_futures", "BTCUSDT")]["coin_id"] == "bitcoin"


def test_every_built_column_is_in_the_models_yml(gold) -> None:
    """The yml (and so docs/data_dictionary.md) lists exactly the columns dbt built."""
    for name, columns in gold["schemas"].items():
        documented = [
            c["name"] for c in yaml.safe_load((MARTS_DIR / f"{name}.yml").read_text())["models"][0]["columns"]
        ]
        assert documented == columns, name


# --- the checks of every Gold table ------------------------------------------------------------------------------


def _recorded(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    table = get_catalog(settings).load_table(QUALITY_CHECK_RESULTS.identifier)
    return table.scan(row_filter=EqualTo("run_id", run_id)).to_arrow().to_pylist()


def test_every_gold_table_is_built_with_checks_that_pass_and_are_recorded(gold) -> None:
    run, checks = gold["runs"]["gold"], gold["runs"]["checks"]
    assert run["success"], run["step_failures"]
    assert {f"gold/{name}" for name in GOLD_TABLES} == set(checks) == set(run["materialized"])
    evaluated: dict[str, set[str]] = defaultdict(set)
    for evaluation in run["evaluations"]:
        evaluated[evaluation["asset_key"]].add(evaluation["check_name"])
    for asset, names in checks.items():
        soda = f"soda_{asset.replace('/', '_')}"
        assert soda in names and evaluated[asset] == set(names), asset  # a Soda check and dbt tests, all run
    failed = [e for e in run["evaluations"] if not e["passed"] and e["check_name"] != ANOMALY_CHECK]
    assert not failed, failed
    # the one anomaly check is a warning, judged against the days recorded before (none: the lakehouse is new)
    assert all(e["severity"] == "WARN" for e in run["evaluations"] if e["check_name"] == ANOMALY_CHECK)

    rows = _recorded(gold["settings"], run["run_id"])
    by_check = {(r["asset_key"], r["check_name"]): r for r in rows}
    partition = f"{COINGECKO_ONLY[0].isoformat()}...{BTC_LAST.isoformat()}"
    for evaluation in run["evaluations"]:
        if evaluation["check_name"] == ANOMALY_CHECK:
            continue  # recorded per day
        row = by_check[(evaluation["asset_key"], evaluation["check_name"])]
        assert row["outcome"] == ("passed" if evaluation["passed"] else "failed"), row
        assert row["partition_key"] == partition
    soda = {r["asset_key"]: r for r in rows if r["check_type"] == "soda"}
    assert set(soda) == set(checks) and all(r["blocking"] and r["severity"] == "ERROR" for r in soda.values())
    bars_5m = len(gold["tables"]["fct_ohlcv_5m"]) + len(gold["extra"]["fct_ohlcv_5m"])
    assert soda["gold/fct_ohlcv_5m"]["row_count"] == bars_5m
    upstream = json.loads(soda["gold/fct_price_daily"]["metric_values"])["upstream_rows"]
    assert upstream == {"silver.daily_prices (NOT is_provisional)": len(gold["coingecko"])}


def test_a_planted_bad_bar_fails_its_soda_check_and_is_recorded(gold) -> None:
    """A copy of one of TRADES_DAY's 5-minute bars with high and low swapped: a duplicate key and high < low."""
    run = gold["runs"]["bad_bar"]
    [evaluation] = run["evaluations"]
    assert (evaluation["check_name"], evaluation["passed"], evaluation["severity"]) == (BAD_CHECK, False, "ERROR")
    assert not run["success"]  # an ERROR check that fails fails its step: the run's downstream is blocked
    duplicate, bounds = "one bar per symbol and open time", "low <= open, close, vwap <= high"
    assert duplicate in evaluation["failed"] and bounds in evaluation["failed"]
    [row] = _recorded(gold["settings"], run["run_id"])
    assert (row["check_name"], row["asset_key"], row["partition_key"]) == (
        BAD_CHECK,
        "gold/fct_ohlcv_5m",
        TRADES_DAY.isoformat(),
    )
    assert (row["outcome"], row["severity"], row["blocking"]) == ("failed", "ERROR", True)
    assert duplicate in row["failed_checks"] and bounds in row["failed_checks"]
    soda = {c["name"]: c for c in json.loads(row["metric_values"])["checks"]}
    assert soda[duplicate]["outcome"] == soda[bounds]["outcome"] == "fail"
    assert soda[bounds]["value"] == 1
    day_bars = [r for r in gold["tables"]["fct_ohlcv_5m"] if r["open_time"].date() == TRADES_DAY]
    assert row["row_count"] == len(day_bars) + len(gold["extra"]["fct_ohlcv_5m"]) + 1


def test_a_minute_with_more_trades_than_its_ids_span_is_not_complete(gold) -> None:
    first, second = sorted(gold["extra"]["fct_completeness_1m"], key=lambda r: r["minute"])
    assert (first["complete"], first["status"], first["agg_trades_missing"]) == (True, "complete", 0)
    # ids 1005..1006 after the previous bar's 1004: two expected, three held (the late id 1002); raw ids alike
    assert (second["agg_trades_expected"], second["agg_trades_observed"], second["agg_trades_missing"]) == (2, 3, -1)
    assert (second["raw_trades_expected"], second["raw_trades_observed"], second["raw_trades_missing"]) == (2, 3, -1)
    assert (second["complete"], second["status"]) == (False, "extra_trades")
    bars = {r["open_time"]: r for r in gold["extra"]["fct_ohlcv_1m"]}
    assert [(bars[m]["complete"], bars[m]["completeness_status"]) for m in EXTRA_MINUTES] == [
        (True, "complete"),
        (False, "extra_trades"),
    ]
    [hour] = gold["extra"]["fct_ohlcv_1h"]
    assert (hour["minute_count"], hour["incomplete_minutes"], hour["complete"]) == (2, 1, False)
