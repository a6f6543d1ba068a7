"""The dbt Gold project: the generated profile, ``dbt parse``, and a real ``dbt build`` against a temp lakehouse.

The build test writes Silver 1-minute bars with pyiceberg, runs ``dbt build`` (dbt-spark session mode, its own
Spark JVM) in a subprocess, reads ``gold.fct_ohlcv_1h`` back with pyiceberg and compares every column with an
exact recomputation in Python ``Decimal``: a first build (which builds everything, vars or not), then a build with
an overlapping partition window (vars min_date / max_date) after Silver changed: hours starting in the window are
recomputed in full (changed ones updated, new ones inserted, unchanged ones identical), all others left alone.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import yaml
from dbt.cli.main import dbtRunner

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment, spark_conf
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_OHLCV_1M
from cryptolake_dagster.defs.dbt.profile import (
    DBT_PROJECT_DIR,
    PROFILE_NAME,
    dbt_env,
    dbt_statement_conf,
    write_dbt_profile,
)

FCT = "gold.fct_ohlcv_1h"
DIM = "gold.dim_symbol"
KEY = ("exchange", "market", "symbol", "hour")
E8 = Decimal("1e-8")
DBT = Path(sys.executable).parent / "dbt"  # the console script beside this interpreter (PATH may lack the venv)
BUILD_TIMEOUT_S = 480  # ~30 s on an idle 2-core machine; far more when other Spark JVMs share the cores


# --- profile and parse ------------------------------------------------------------------------------------------
def test_profile_carries_the_platform_spark_settings(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", dbt_threads=3)
    directory = write_dbt_profile(settings)

    assert directory == (tmp_path / "state" / "dbt").resolve()
    path = directory / "profiles.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    output = yaml.safe_load(path.read_text())[PROFILE_NAME]["outputs"]["local"]
    assert {k: output[k] for k in ("type", "method", "host", "schema", "threads")} == {
        "type": "spark",
        "method": "session",
        "host": "NA",
        "schema": "gold",
        "threads": 3,
    }
    assert output["server_side_parameters"] == spark_conf(settings, "cryptolake-dbt") | dbt_statement_conf(settings)
    assert output["server_side_parameters"]["spark.sql.shuffle.partitions"] == "1"  # dbt's own, not Silver's 4
    assert output["server_side_parameters"]["spark.sql.adaptive.enabled"] == "false"
    assert output["server_side_parameters"]["spark.sql.catalogImplementation"] == "in-memory"
    assert output["server_side_parameters"]["spark.sql.defaultCatalog"] == settings.catalog_name

    mtime = path.stat().st_mtime_ns
    assert write_dbt_profile(settings, tmp_path / "elsewhere") == (tmp_path / "elsewhere").resolve()
    assert write_dbt_profile(settings) == directory and path.stat().st_mtime_ns == mtime  # unchanged: not rewritten


def test_profile_values_with_jinja_delimiters_stay_literal() -> None:
    from dbt.clients.jinja import get_rendered

    from cryptolake_dagster.defs.dbt.profile import _jinja_literal

    for value in ("pa{{ss}}", "x{%y", "p#{#q", "file:///tmp/w", "false", "1g"):
        assert str(get_rendered(_jinja_literal(value), {}, native=True)) == value  # as dbt renders profiles.yml


def test_dbt_parse(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    profiles = write_dbt_profile(settings)
    target = tmp_path / "target"
    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(profiles),
         "--target-path", str(target), "--log-path", str(tmp_path / "logs"), "--no-partial-parse", "--quiet"]
    )  # fmt: skip
    assert result.success, result.exception

    nodes = json.loads((target / "manifest.json").read_text())["nodes"]
    models = {n["name"]: n for n in nodes.values() if n["resource_type"] == "model"}
    layers = {name: (m["schema"], m["config"]["materialized"]) for name, m in models.items()}
    incremental = {"fct_ohlcv_1m", "fct_ohlcv_5m", "fct_ohlcv_15m", "fct_ohlcv_1h", "fct_ohlcv_4h", "fct_ohlcv_1d",
                   "fct_completeness_1m", "fct_completeness_daily", "fct_futures_daily"}  # fmt: skip
    tables = {"dim_symbol", "dim_coin", "dim_date", "fct_price_daily", "fct_market_daily"}
    assert {name for name, layer in layers.items() if layer == ("gold", "incremental")} == incremental
    assert {name for name, layer in layers.items() if layer == ("gold", "table")} == tables
    # staging and intermediate models are inlined (ephemeral): no Spark view outlives a session
    assert {name for name, layer in layers.items() if layer == ("gold", "ephemeral")} == {
        name for name in models if name.startswith(("stg_", "int_"))
    }
    fct = models["fct_ohlcv_1h"]["config"]
    assert (fct["file_format"], fct["incremental_strategy"], fct["partition_by"]) == (
        "iceberg", "insert_overwrite", ["days(hour)"]
    )  # fmt: skip
    overwritten = {name for name, m in models.items() if m["config"].get("incremental_strategy") == "insert_overwrite"}
    assert overwritten == {"fct_ohlcv_1m", "fct_ohlcv_5m", "fct_ohlcv_15m", "fct_ohlcv_1h", "fct_ohlcv_4h",
                           "fct_ohlcv_1d", "fct_completeness_1m"}  # fmt: skip
    tests = {n["name"] for n in nodes.values() if n["resource_type"] == "test"}
    assert {
        "not_null_fct_ohlcv_1h_exchange", "not_null_fct_ohlcv_1h_market", "not_null_fct_ohlcv_1h_symbol",
        "not_null_fct_ohlcv_1h_hour", "unique_fct_ohlcv_1h_grain", "ohlc_bounds_fct_ohlcv_1h",
        "assert_fct_ohlcv_1h_consistent", "not_null_dim_symbol_symbol", "unique_dim_symbol_grain",
    } <= tests  # fmt: skip
    # every mart has a grain test (unique keys)
    for name in incremental | tables:
        assert any(test.startswith("unique") and name in test for test in tests), f"{name} has no grain test"


# --- Silver test data and the independent recomputation ----------------------------------------------------------
def _silver_bars(seed: int) -> list[dict[str, Any]]:
    """1-minute bars built from synthetic trades exactly as Silver builds them (gaps, day boundary, 2 markets)."""
    rng = random.Random(seed)
    built_at = datetime(2024, 3, 5, tzinfo=UTC)
    start = datetime(2024, 3, 1, 22, 0, tzinfo=UTC)
    bars = []
    for market, symbol, base in (
        ("spot", "BTCUSDT", "62000"),
        ("spot", "ETHUSDT", "3400"),
        ("usdm_futures", "BTCUSDT", "62010"),
    ):
        price, agg_id = Decimal(base), 1_000_000
        for i in range(5 * 60):  # 22:00 .. 02:59 UTC
            if rng.random() < 0.5:
                continue  # minutes without trades have no bar
            trades = []
            for _ in range(rng.randint(1, 4)):
                price = max(Decimal(1), price + Decimal(rng.randint(-500_000_000, 500_000_000)) * E8)
                quantity = Decimal(rng.randint(1, 300_000_000)) * E8
                trades.append((agg_id, price, quantity, rng.choice(("buy", "sell")), rng.randint(1, 5)))
                agg_id += rng.randint(1, 3)
            volume = sum((q for _, _, q, _, _ in trades), Decimal(0))
            quote = sum((p * q for _, p, q, _, _ in trades), Decimal(0))
            bars.append({
                "exchange": "binance", "market": market, "symbol": symbol, "minute": start + timedelta(minutes=i),
                "open": trades[0][1], "high": max(t[1] for t in trades), "low": min(t[1] for t in trades),
                "close": trades[-1][1], "volume": volume, "quote_volume": quote, "trade_count": sum(t[4] for t in trades),
                "agg_trade_count": len(trades),
                "taker_buy_quote_volume": sum((p * q for _, p, q, s, _ in trades if s == "buy"), Decimal(0)),
                "vwap": _vwap(quote, volume),
                "buy_volume": sum((q for _, _, q, s, _ in trades if s == "buy"), Decimal(0)),
                "sell_volume": sum((q for _, _, q, s, _ in trades if s == "sell"), Decimal(0)),
                "first_agg_trade_id": trades[0][0], "last_agg_trade_id": trades[-1][0], "built_at": built_at,
            })  # fmt: skip
    return bars


def _vwap(quote: Decimal, volume: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 100
        return (quote / volume).quantize(E8, rounding=ROUND_HALF_UP)


def _expected_hours(bars: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for bar in bars:
        hour = bar["minute"].replace(minute=0, second=0, microsecond=0)
        groups[(bar["exchange"], bar["market"], bar["symbol"], hour)].append(bar)
    expected = {}
    for key, minutes in groups.items():
        minutes.sort(key=lambda b: b["minute"])
        volume = sum(b["volume"] for b in minutes)
        quote = sum(b["quote_volume"] for b in minutes)
        expected[key] = {
            **dict(zip(KEY, key, strict=True)),
            "open": minutes[0]["open"], "high": max(b["high"] for b in minutes), "low": min(b["low"] for b in minutes),
            "close": minutes[-1]["close"], "volume": volume, "quote_volume": quote,
            "trade_count": sum(b["trade_count"] for b in minutes), "vwap": _vwap(quote, volume),
            "buy_volume": sum(b["buy_volume"] for b in minutes), "sell_volume": sum(b["sell_volume"] for b in minutes),
            "first_agg_trade_id": minutes[0]["first_agg_trade_id"],
            "last_agg_trade_id": minutes[-1]["last_agg_trade_id"], "minute_count": len(minutes),
            "agg_trade_count": sum(b["agg_trade_count"] for b in minutes),
            "taker_buy_quote_volume": sum(b["taker_buy_quote_volume"] for b in minutes),
        }  # fmt: skip
    return expected


def _change_minute(bars: list[dict[str, Any]], at_or_after: datetime, market: str, symbol: str) -> datetime:
    """Make the instrument's first bar at or after ``at_or_after`` a new high with more volume; return its minute."""
    bar = next(
        b for b in bars if (b["market"], b["symbol"]) == (market, symbol) and b["minute"] >= at_or_after
    )  # fmt: skip
    bar["high"] = bar["close"] = bar["high"] + Decimal("1000.12345678")
    bar["volume"] += Decimal("0.5")
    bar["buy_volume"] += Decimal("0.5")
    bar["quote_volume"] += Decimal("0.5") * bar["high"]
    bar["taker_buy_quote_volume"] += Decimal("0.5") * bar["high"]
    bar["agg_trade_count"] += 1
    bar["vwap"] = _vwap(bar["quote_volume"], bar["volume"])
    bar["trade_count"] += 1
    bar["last_agg_trade_id"] += 1  # ids of the instrument's next minute are at least 1 higher
    return bar["minute"]


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


# --- dbt build ----------------------------------------------------------------------------------------------------
def _java_processes_of(state_dir: Path) -> list[psutil.Process]:
    """Spark driver JVMs whose command line names this test's state dir (spark.local.dir, derby home)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "java" and str(state_dir) in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _dbt_build(settings: Settings, tmp_path: Path, dbt_vars: dict[str, str] | None = None, *args: str) -> float:
    """``dbt build`` in a subprocess (own session, so its JVM can be stopped with it); returns seconds taken."""
    command = [str(DBT), "build", "--project-dir", str(DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target")]
    if dbt_vars:
        command += ["--vars", json.dumps(dbt_vars)]
    command += args
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=tmp_path, env={**os.environ, **dbt_env(settings)}, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=BUILD_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own dbt process group (dbt + its Spark JVM)
            proc.wait()
    elapsed = time.monotonic() - started
    # the driver JVM exits with dbt (py4j's gateway watches its parent's pipe)
    deadline = time.monotonic() + 20
    while (alive := _java_processes_of(settings.state_dir.resolve())) and time.monotonic() < deadline:
        time.sleep(0.2)
    for leftover in alive:  # started by our dbt subprocess (its command line names our temp state dir)
        leftover.kill()
    assert not alive, f"Spark JVM(s) survived the dbt process: {[p.pid for p in alive]}"
    assert proc.returncode == 0, f"dbt build {dbt_vars or ''} failed:\n{output[-12_000:]}"
    assert "ERROR=0" in output and "WARN=0" in output, output[-4_000:]
    return elapsed


#: Bars' completeness columns: their values are tested in test_gold_star_schema and the repair test.
COMPLETENESS_COLUMNS = ("incomplete_minutes", "complete")


def _gold_rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    rows = get_catalog(settings).load_table(table).scan().to_arrow().to_pylist()
    return [{k: v for k, v in row.items() if k not in COMPLETENESS_COLUMNS} for row in rows]


def _by_key(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    keyed = {tuple(row[k] for k in KEY): row for row in rows}
    assert len(keyed) == len(rows), "duplicate grain rows"
    return keyed


def test_dbt_build_incremental_merge(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)  # tiny data: one task per stage
    prepare_spark_environment(settings)  # catalog tables, namespaces and registered tables
    catalog = get_catalog(settings)
    silver = catalog.load_table(SILVER_OHLCV_1M.identifier)
    arrow_schema = silver.schema().as_arrow()
    bars = _silver_bars(seed=11)  # 2024-03-01 22:00 .. 2024-03-02 02:59 UTC
    silver.append(pa.Table.from_pylist(bars, schema=arrow_schema))
    timings = []

    # 1. First run, with the partition window of 2024-03-01 as Dagster passes it: the table does not exist yet, so
    #    the model is not incremental and every hour is built (the window only restricts incremental runs).
    day = {"min_date": "2024-03-01 00:00:00", "max_date": "2024-03-02 00:00:00"}
    timings.append(_dbt_build(settings, tmp_path, day))
    gold = catalog.load_table(FCT)
    types = {f.name: str(f.field_type) for f in gold.schema().fields}
    assert types == {
        "exchange": "string", "market": "string", "symbol": "string", "hour": "timestamptz",
        "open": "decimal(28, 8)", "high": "decimal(28, 8)", "low": "decimal(28, 8)", "close": "decimal(28, 8)",
        "volume": "decimal(38, 8)", "quote_volume": "decimal(38, 16)", "trade_count": "long",
        "vwap": "decimal(28, 8)", "buy_volume": "decimal(38, 8)", "sell_volume": "decimal(38, 8)",
        "first_agg_trade_id": "long", "last_agg_trade_id": "long", "minute_count": "long",
        "agg_trade_count": "long", "taker_buy_quote_volume": "decimal(38, 16)",
        "incomplete_minutes": "long", "complete": "boolean",
    }  # fmt: skip
    assert [(f.name, str(f.transform)) for f in gold.spec().fields] == [("hour_day", "day")]
    expected_v1 = _expected_hours(bars)
    assert len(expected_v1) == 3 * 5  # 3 instruments x 5 hours, across the day boundary
    first = _by_key(_gold_rows(settings, FCT))
    assert first == expected_v1
    dim = sorted((r["symbol"], r["exchange"], r["market"], r["first_seen_minute"]) for r in _gold_rows(settings, DIM))
    assert dim == sorted(
        (symbol, "binance", market, min(b["minute"] for b in bars if (b["market"], b["symbol"]) == (market, symbol)))
        for market, symbol in (("spot", "BTCUSDT"), ("spot", "ETHUSDT"), ("usdm_futures", "BTCUSDT"))
    )

    # Silver changes around the window [00:30, 02:30) of 2024-03-02 of the next run.
    lo, hi = datetime(2024, 3, 2, 0, 30, tzinfo=UTC), datetime(2024, 3, 2, 2, 30, tzinfo=UTC)
    day = lo.date()
    inside = _change_minute(bars, datetime(2024, 3, 2, 1, 17, tzinfo=UTC), "spot", "BTCUSDT")
    after_hi = _change_minute(bars, datetime(2024, 3, 2, 2, 35, tzinfo=UTC), "usdm_futures", "BTCUSDT")
    day_before = _change_minute(bars, datetime(2024, 3, 1, 23, 5, tzinfo=UTC), "spot", "ETHUSDT")
    outside = _change_minute(bars, datetime(2024, 3, 1, 22, 20, tzinfo=UTC), "spot", "BTCUSDT")
    assert inside.date() == after_hi.date() == day and after_hi >= hi  # the window's day, after its end too
    assert day_before.date() == outside.date() < day  # the day before the window
    new_symbol = dict(bars[0], symbol="SOLUSDT", minute=datetime(2024, 3, 2, 0, 5, tzinfo=UTC))  # before lo
    new_hour = dict(bars[0], minute=datetime(2024, 3, 2, 3, 5, tzinfo=UTC))  # a new hour after the window
    for extra in (new_symbol, new_hour):
        extra["first_agg_trade_id"] = extra["last_agg_trade_id"] = 9_000_000
    bars += [new_symbol, new_hour]
    silver.overwrite(pa.Table.from_pylist(bars, schema=arrow_schema))
    expected_v2 = _expected_hours(bars)

    # 2. An incremental run with an unaligned window (ISO 'T' / 'Z') inside 2024-03-02: every hour of every UTC
    #    day the window touches is recomputed from all its minutes and overwrites that day; other days stay.
    window = {"min_date": "2024-03-02T00:30:00Z", "max_date": "2024-03-02T02:30:00Z"}
    timings.append(_dbt_build(settings, tmp_path, window, "--select", "+fct_ohlcv_1h"))  # the model and its tests
    second = _by_key(_gold_rows(settings, FCT))
    rebuilt = {k for k in expected_v2 if k[3].date() == day}
    assert {k[3].hour for k in rebuilt} == {0, 1, 2, 3}
    assert {k: second[k] for k in rebuilt} == {k: expected_v2[k] for k in rebuilt}  # updated + inserted, in full
    assert {k: v for k, v in second.items() if k not in rebuilt} == {
        k: v for k, v in expected_v1.items() if k[3].date() != day
    }  # the changes of 2024-03-01 are outside the window's day: untouched
    changed = {k for k in rebuilt if expected_v2[k] != expected_v1.get(k)}
    assert changed == {
        ("binance", "spot", "BTCUSDT", _hour(inside)),
        ("binance", "usdm_futures", "BTCUSDT", _hour(after_hi)),
        ("binance", "spot", "SOLUSDT", _hour(new_symbol["minute"])),
        (new_hour["exchange"], new_hour["market"], new_hour["symbol"], _hour(new_hour["minute"])),
    }
    assert {k: second[k] for k in rebuilt - changed} == {k: first[k] for k in rebuilt - changed}  # idempotent
    assert len(second) == len(first) + 2
    assert second != expected_v2  # the day before kept its old hours

    for leftover in ("metastore_db", "derby.log", "spark-warehouse"):
        assert not (tmp_path / leftover).exists(), f"dbt-spark created {leftover} in its working directory"
    print(f"dbt build timings (s): {', '.join(f'{t:.1f}' for t in timings)}")


def test_gold_table_of_the_previous_version_gains_the_new_bar_columns(tmp_path: Path) -> None:
    """A gold.fct_ohlcv_1h built before agg_trade_count / taker_buy_quote_volume existed: the next incremental run
    appends the columns (on_schema_change) and fills them for the day it rebuilds; the other rows keep their values."""
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)
    prepare_spark_environment(settings)
    catalog = get_catalog(settings)
    silver = catalog.load_table(SILVER_OHLCV_1M.identifier)
    bars = _silver_bars(seed=5)
    silver.append(pa.Table.from_pylist(bars, schema=silver.schema().as_arrow()))
    _dbt_build(settings, tmp_path, None, "--select", "+fct_ohlcv_1h")
    new_columns = ("agg_trade_count", "taker_buy_quote_volume")
    with catalog.load_table(FCT).update_schema() as update:  # the table as the previous version left it
        for name in new_columns:
            update.delete_column(name)
    before = _by_key(_gold_rows(settings, FCT))

    window = {"min_date": "2024-03-02 00:00:00", "max_date": "2024-03-02 01:00:00"}
    _dbt_build(settings, tmp_path, window, "--select", "+fct_ohlcv_1h")
    gold = catalog.load_table(FCT)
    assert [f.name for f in gold.schema().fields][-2:] == list(new_columns)
    after = _by_key(_gold_rows(settings, FCT))
    expected = _expected_hours(bars)
    assert set(after) == set(before) == set(expected)
    for key, row in after.items():
        if key[3].date() == date(2024, 3, 2):  # the window's day, rebuilt: every column, the new ones included
            assert row == expected[key]
        else:  # untouched: the old values, null in the new columns
            assert row == {**before[key], **dict.fromkeys(new_columns)}


def test_dbt_vars_are_the_contract_and_settings_constants() -> None:
    """The dbt project's defaults for the coin map and the quote assets are the Python ones (one fact, one place:
    the platform passes its settings' coin map at run time; the defaults serve a hand-run ``dbt build``)."""
    from cryptolake.contract.rules import _QUOTES_LONGEST_FIRST
    from cryptolake.settings import DEFAULT_COIN_IDS

    project_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert project_vars["coin_ids"] == DEFAULT_COIN_IDS
    assert project_vars["quote_assets"] == list(_QUOTES_LONGEST_FIRST)
    assert set(project_vars["usd_quotes"]) <= set(project_vars["quote_assets"])
