"""Completeness and repair end to end, with real parts only.

The exchange simulator skips every 97th trade on the WebSocket (it stays in its REST history, as a trade lost on
the stream does at Binance), and the producer's live gap repair cannot fetch it (its REST endpoint is a second,
empty simulator). So Bronze misses those trades. Then, as a user would: the REST klines asset loads the exchange's
1m klines, ``silver_gold_daily`` builds the day and ``gold.fct_completeness_1m`` must flag exactly the minutes an
independent computation here says are incomplete; ``repair_day`` fetches the missing ids over REST, rebuilds the
day, and every minute is then complete and every bar equals the exchange's kline field by field. A second repair
changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import dagster as dg
import pytest
import requests
from pyiceberg.expressions import In

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import REPO_ROOT
from cryptolake.tables import (
    BRONZE_TRADES,
    BRONZE_TRADES_BACKFILL,
    GOLD_COMPLETENESS_1M,
    GOLD_COMPLETENESS_DAILY,
    SILVER_OHLCV_1M,
    SILVER_TRADES,
)
from cryptolake_dagster.defs.sources.assets import bronze_binance_klines
from cryptolake_dagster.defs.sources.resources import BinanceKlinesResource
from cryptolake_dagster.resources import lakehouse_resources
from cryptolake_dagster_tests.pipeline.trade_fixtures import generate_trades, write_recording
from simulators.binance import Faults, run_in_thread

DAY = datetime(2024, 4, 2, tzinfo=UTC)
START = DAY + timedelta(hours=9)
SYMBOLS = ["ETCUSDT", "HBARUSDT"]  # no other test uses them: the topic and Bronze are shared
PER_SYMBOL = 300
SKIP_EVERY = 97
KLINE_FIELDS = {  # our bar column -> index in Binance's kline array
    "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7, "trade_count": 8, "buy_volume": 9,
    "taker_buy_quote_volume": 10,
}  # fmt: skip


def _rows(settings, identifier: str) -> list[dict]:
    table = get_catalog(settings).load_table(identifier)
    return table.scan(row_filter=In("symbol", SYMBOLS)).to_arrow().to_pylist()


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def ingested_with_holes(settings, broker, tmp_path_factory):
    """Ingest through the real producer and Bronze writer while the simulator skips trades; yield the generated
    trades, the ids Bronze misses and the simulator (serving REST aggTrades and klines of every trade)."""
    trades = generate_trades(SYMBOLS, PER_SYMBOL, START, timedelta(minutes=60), seed=23)
    recording = write_recording(trades, tmp_path_factory.mktemp("rec") / "trades.ndjson")
    env = {
        **os.environ,
        "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "CRYPTOLAKE_SYMBOLS": ",".join(SYMBOLS),
        "PYTHONUNBUFFERED": "1",
    }
    faults = Faults(skip_every=SKIP_EVERY)
    with (
        run_in_thread(mode="replay", replay_file=recording, speed=0, wait_for_subscriber=True, faults=faults) as sim,
        run_in_thread(mode="synthetic", symbols=("BNBUSDT",), max_trades=0) as empty_rest,  # no trades at all
    ):
        producer = subprocess.Popen(
            [sys.executable, "-m", "streaming.producer", "--ws-url", sim.url, "--rest-url", empty_rest.rest_url,
             "--progress-every", "1", "--no-checkpoint"],
            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            sim.wait_for_emitted(len(trades), timeout=90)
            time.sleep(2)
        finally:
            producer.terminate()
            output = producer.communicate(timeout=30)[0]
        assert producer.returncode == 0, output
        writer = subprocess.run(
            [sys.executable, "-m", "streaming.bronze_writer", "--commit-interval", "2", "--exit-when-idle", "6"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert writer.returncode == 0, writer.stdout + writer.stderr
        held = {(r["symbol"], r["agg_trade_id"]) for r in _rows(settings, BRONZE_TRADES.identifier)}
        missing = {(t.symbol, t.agg_id) for t in trades} - held
        assert 3 <= len(missing) <= len(trades) // SKIP_EVERY + 1, (len(missing), output[-2000:])
        yield trades, missing, sim


def _exchange_klines(rest_url: str) -> dict[tuple[str, datetime], list]:
    klines = {}
    for symbol in SYMBOLS:
        response = requests.get(
            f"{rest_url}/api/v3/klines",
            params={"symbol": symbol, "interval": "1m", "startTime": int(DAY.timestamp() * 1000),
                    "endTime": int((DAY + timedelta(days=1)).timestamp() * 1000) - 1, "limit": 1000},
            timeout=30,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        for row in response.json():
            klines[(symbol, datetime.fromtimestamp(row[0] / 1000, UTC))] = row
    return klines


def _expected_incomplete(trades, missing) -> dict[tuple[str, datetime], int]:
    """Minutes that must be flagged, each with the aggregate ids charged to it: the minute a missing trade is in
    (its kline differs from our bar), and the minute of the next trade we hold (the id hole is charged there)."""
    by_symbol = defaultdict(list)
    for t in sorted(trades, key=lambda t: t.agg_id):
        by_symbol[t.symbol].append(t)
    flagged: dict[tuple[str, datetime], int] = {}
    for symbol, series in by_symbol.items():
        for index, trade in enumerate(series):
            if (symbol, trade.agg_id) not in missing:
                continue
            later = [t for t in series[index + 1 :] if (symbol, t.agg_id) not in missing]
            assert later, "a skipped trade is the symbol's last: pick another seed"
            flagged.setdefault((symbol, _minute(trade.time)), 0)
            key = (symbol, _minute(later[0].time))
            flagged[key] = flagged.get(key, 0) + 1
    return flagged


@pytest.fixture(scope="module")
def definitions(settings, ingested_with_holes):
    from cryptolake_dagster.definitions import build_definitions

    _, _, sim = ingested_with_holes
    return build_definitions(settings.model_copy(update={"binance_rest_url": sim.rest_url}))


@pytest.fixture(scope="module")
def checked(settings, ingested_with_holes, definitions):
    """The exchange's 1m klines loaded by the REST klines asset, then the day built by silver_gold_daily."""
    _, _, sim = ingested_with_holes
    klines = BinanceKlinesResource(spot_base_url=sim.rest_url, futures_base_url=sim.rest_url, symbols=SYMBOLS,
                                   markets=["spot"], intervals=["1m"])  # fmt: skip
    loaded = dg.materialize(
        [bronze_binance_klines],
        partition_key=DAY.date().isoformat(),
        resources={**lakehouse_resources(settings), "binance_klines": klines},
    )
    assert loaded.success
    built = definitions.get_job_def("silver_gold_daily").execute_in_process(partition_key=DAY.date().isoformat())
    assert built.success
    return _rows(settings, GOLD_COMPLETENESS_1M), _rows(settings, GOLD_COMPLETENESS_DAILY)


def test_completeness_flags_exactly_the_minutes_with_missing_trades(ingested_with_holes, checked) -> None:
    trades, missing, sim = ingested_with_holes
    minutes, days = checked
    expected = _expected_incomplete(trades, missing)
    incomplete = {(r["symbol"], r["minute"]): r for r in minutes if not r["complete"]}
    assert set(incomplete) == set(expected)
    for key, charged in expected.items():
        row = incomplete[key]
        assert row["agg_trades_missing"] == charged, key
        assert row["raw_trades_missing"] == 2 * charged, key  # each generated aggregate covers two raw trades
        assert row["status"] == ("missing_agg_trades" if charged else "kline_mismatch"), key
    klines = _exchange_klines(sim.rest_url)
    assert {(r["symbol"], r["minute"]) for r in minutes} == set(klines)  # every minute checked against a kline
    assert all(r["has_kline"] for r in minutes)
    for day in days:
        assert day["day"] == DAY.date() and day["complete"] is False
        assert day["agg_trades_missing"] == sum(1 for symbol, _ in missing if symbol == day["symbol"])
        assert day["incomplete_minutes"] == sum(1 for symbol, _ in expected if symbol == day["symbol"])
        assert day["minutes"] == sum(1 for symbol, _ in klines if symbol == day["symbol"])


def test_a_repair_that_rest_cannot_serve_fails_by_name_and_writes_nothing(settings, checked) -> None:
    """REST answering no trades for the missing ids (here: an exchange that never had them): the run fails and
    names the series and what to do; nothing is written."""
    from cryptolake_dagster.definitions import build_definitions

    before = len(_rows(settings, BRONZE_TRADES_BACKFILL.identifier))
    with run_in_thread(mode="synthetic", symbols=("BNBUSDT",), max_trades=0) as elsewhere:
        defs = build_definitions(settings.model_copy(update={"binance_rest_url": elsewhere.rest_url}))
        result = defs.get_job_def("repair_day").execute_in_process(
            partition_key=DAY.date().isoformat(), raise_on_error=False
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "could not be repaired over REST" in message and SYMBOLS[0] in message and "repair_day" in message
    assert len(_rows(settings, BRONZE_TRADES_BACKFILL.identifier)) == before


def test_repair_fills_the_holes_and_the_bars_then_equal_the_klines(
    settings, ingested_with_holes, checked, definitions
) -> None:
    trades, missing, sim = ingested_with_holes
    repaired = definitions.get_job_def("repair_day").execute_in_process(partition_key=DAY.date().isoformat())
    assert repaired.success
    backfill = [r for r in _rows(settings, BRONZE_TRADES_BACKFILL.identifier) if r["source"] == "rest_backfill"]
    assert missing <= {(r["symbol"], r["agg_trade_id"]) for r in backfill}

    minutes = _rows(settings, GOLD_COMPLETENESS_1M)
    assert minutes and all(r["complete"] and r["status"] == "complete" for r in minutes), [
        (r["symbol"], r["minute"], r["status"]) for r in minutes if not r["complete"]
    ]
    assert all(day["complete"] and day["complete_share"] == 1.0 for day in _rows(settings, GOLD_COMPLETENESS_DAILY))
    silver = _rows(settings, SILVER_TRADES.identifier)
    assert sorted((r["symbol"], r["agg_trade_id"]) for r in silver) == sorted((t.symbol, t.agg_id) for t in trades)

    eight = Decimal("0.00000001")
    bars = {(r["symbol"], r["minute"]): r for r in _rows(settings, SILVER_OHLCV_1M.identifier)}
    klines = _exchange_klines(sim.rest_url)
    assert set(bars) == set(klines)
    for key, kline in klines.items():
        mine = {name: bars[key][name] for name in KLINE_FIELDS}
        for name in ("quote_volume", "taker_buy_quote_volume"):
            mine[name] = mine[name].quantize(eight, rounding=ROUND_HALF_EVEN)
        theirs = {name: kline[i] if name == "trade_count" else Decimal(kline[i]) for name, i in KLINE_FIELDS.items()}
        assert mine == theirs, key

    # Repairing again fetches the same ids and writes the same rows: nothing doubled anywhere.
    again = definitions.get_job_def("repair_day").execute_in_process(partition_key=DAY.date().isoformat())
    assert again.success
    after = [r for r in _rows(settings, BRONZE_TRADES_BACKFILL.identifier) if r["source"] == "rest_backfill"]
    assert sorted((r["symbol"], r["agg_trade_id"]) for r in after) == sorted(
        (r["symbol"], r["agg_trade_id"]) for r in backfill
    )
    assert len(_rows(settings, SILVER_TRADES.identifier)) == len(trades)


def test_archived_trades_join_the_live_ones_without_doubling(
    settings, ingested_with_holes, checked, definitions, tmp_path
) -> None:
    """Binance's aggTrades archive of the day (every trade, the skipped ones too) imported by the daily archive
    job: Silver deduplicates it with the live and repaired trades on the natural key, so the day is unchanged."""
    from cryptolake_dagster.definitions import build_definitions
    from cryptolake_dagster_tests.history.test_agg_trades_archive import agg_trades_line, write_agg_trades_file

    trades, _, _ = ingested_with_holes
    symbol = SYMBOLS[0]
    archived = [
        {"a": t.agg_id, "p": t.price, "q": t.qty, "f": t.first_id, "l": t.last_id, "time": t.time,
         "m": t.buyer_is_maker}
        for t in sorted(trades, key=lambda t: t.agg_id) if t.symbol == symbol
    ]  # fmt: skip
    origin = write_agg_trades_file(
        tmp_path, "spot", symbol, DAY.date().isoformat(), [agg_trades_line(t, 1, True) for t in archived]
    )
    before = {(r["symbol"], r["minute"]): r for r in _rows(settings, SILVER_OHLCV_1M.identifier)}
    archive_settings = settings.model_copy(
        update={"archive_root": tmp_path, "archive_symbols": [symbol], "archive_markets": ["spot"]}
    )
    job = build_definitions(archive_settings).get_job_def("binance_agg_trades_daily")
    assert job.execute_in_process(partition_key=DAY.date().isoformat()).success

    imported = [r for r in _rows(settings, BRONZE_TRADES_BACKFILL.identifier) if r["origin"] == origin]
    assert sorted(r["agg_trade_id"] for r in imported) == [t["a"] for t in archived]
    silver = _rows(settings, SILVER_TRADES.identifier)
    assert sorted((r["symbol"], r["agg_trade_id"]) for r in silver) == sorted((t.symbol, t.agg_id) for t in trades)
    copies = {r["agg_trade_id"]: r["bronze_copies"] for r in silver if r["symbol"] == symbol}
    assert min(copies.values()) >= 2  # every trade of the symbol is held twice or more: live or repaired + archive
    after = {(r["symbol"], r["minute"]): r for r in _rows(settings, SILVER_OHLCV_1M.identifier)}
    assert {k: {c: v[c] for c in KLINE_FIELDS} for k, v in after.items()} == {
        k: {c: v[c] for c in KLINE_FIELDS} for k, v in before.items()
    }
    assert all(r["complete"] for r in _rows(settings, GOLD_COMPLETENESS_1M))
