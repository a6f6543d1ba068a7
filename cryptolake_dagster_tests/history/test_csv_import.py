"""``cryptolake import csv``: CryptoDataDownload-layout files into bronze.ohlcv_csv, through the real CLI.

The files are generated here (newest first, ``HH-AM`` hourly dates, a URL line, a couple of bad rows); the table
must hold exactly the generated bars, re-importing must change nothing, and a corrected file must converge.
"""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cryptolake.tables import BRONZE_OHLCV_CSV
from cryptolake_dagster_tests.history.import_cli import run_import, table_rows

HOURLY_START = datetime(2019, 3, 1, tzinfo=UTC)
DAILY_START = datetime(2016, 5, 1, tzinfo=UTC)


def _hh_am(moment: datetime) -> str:
    """CryptoDataDownload's hourly date: ``2019-03-01 12-AM`` is midnight, ``01-PM`` is 13:00."""
    return moment.strftime("%Y-%m-%d %I-%p")


def _bars(start: datetime, step: timedelta, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    price = Decimal(rng.randint(3_000, 9_000))
    bars = []
    for i in range(count):
        open_ = price
        close = max(Decimal("0.01"), open_ + Decimal(rng.randint(-20_000, 20_000)) / 100)
        high = max(open_, close) + Decimal(rng.randint(0, 5_000)) / 100
        low = max(Decimal("0.01"), min(open_, close) - Decimal(rng.randint(0, 5_000)) / 100)
        base = Decimal(rng.randint(1, 10**10)) / 10**8
        bars.append({
            "open_time": start + step * i, "open": open_, "high": high, "low": low, "close": close,
            "base_volume": base, "quote_volume": (base * close).quantize(Decimal("0.00000001")),
            "trade_count": rng.randint(10, 5_000),
        })  # fmt: skip
        price = close
    return bars


def _write_hourly(path: Path, bars: list[dict], bad_rows: bool = True) -> None:
    lines = [
        "https://www.CryptoDataDownload.com",
        "unix,date,symbol,open,high,low,close,Volume BTC,Volume USD,tradecount",
    ]
    body = [
        f"{int(b['open_time'].timestamp() * 1000)},{_hh_am(b['open_time'])},BTC/USD,{b['open']},{b['high']},{b['low']},"
        f"{b['close']},{b['base_volume']},{b['quote_volume']},{b['trade_count']}"
        for b in reversed(bars)  # newest first
    ]
    if bad_rows:
        body.insert(3, "1551398400000,2019-03-01 99-XM,BTC/USD,1,2,0.5,1,1,1,1")  # no such hour
        body.insert(7, "1551398400000,2019-03-01 01-AM,BTC/USD,abc,2,0.5,1,1,1,1")  # not a number
        body.insert(9, "1551398400000,2019-03-01 02-AM,BTC/USD,1.0000000000001,2,0.5,1,1,1,1")  # 13 decimals
    path.write_text("\n".join(lines + body) + "\n", encoding="utf-8")


def _write_daily(path: Path, bars: list[dict]) -> None:
    lines = ["https://www.CryptoDataDownload.com", "Date,Symbol,Open,High,Low,Close,Volume ETH,Volume USD"]
    body = [
        f"{b['open_time']:%Y-%m-%d},ETH/USD,{b['open']},{b['high']},{b['low']},{b['close']},{b['base_volume']},"
        f"{b['quote_volume']}"
        for b in reversed(bars)
    ]
    path.write_text("\n".join(lines + body) + "\n", encoding="utf-8")


def _import(state: Path, *files: Path, exchange: str = "bitstamp") -> subprocess.CompletedProcess:
    return run_import(state, "csv", "--exchange", exchange, *map(str, files))


def _table(state: Path, symbol: str) -> dict[datetime, dict]:
    return {r["open_time"]: r for r in table_rows(state, BRONZE_OHLCV_CSV.identifier) if r["symbol"] == symbol}


def _expected(bars: list[dict], **extra) -> dict[datetime, dict]:
    return {b["open_time"]: {**b, **extra} for b in bars}


def _comparable(rows: dict[datetime, dict], columns: tuple[str, ...]) -> dict[datetime, dict]:
    return {moment: {c: row[c] for c in columns} for moment, row in rows.items()}


COLUMNS = ("open_time", "open", "high", "low", "close", "base_volume", "quote_volume", "trade_count")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_hourly_file_imports_exactly_and_re_imports_converge(tmp_path: Path, state: Path) -> None:
    bars = _bars(HOURLY_START, timedelta(hours=1), 72, seed=3)
    hourly = tmp_path / "Bitstamp_BTCUSD_1h.csv"
    _write_hourly(hourly, bars)

    first = _import(state, hourly)
    assert first.returncode == 0, first.stderr
    assert "72 1h bars of bitstamp BTCUSD, 2019-03-01 00:00 .. 2019-03-03 23:00 UTC; 3 rows refused" in first.stdout
    assert "bad_date" in first.stdout and "bad_number" in first.stdout and "too_many_decimals" in first.stdout
    rows = _table(state, "BTCUSD")
    assert _comparable(rows, COLUMNS) == _expected(bars)
    assert {(r["exchange"], r["interval"], r["source_file"]) for r in rows.values()} == {
        ("bitstamp", "1h", hourly.name)
    }
    assert all(isinstance(r["open"], Decimal) for r in rows.values())

    again = _import(state, hourly)
    assert again.returncode == 0, again.stderr
    assert _comparable(_table(state, "BTCUSD"), COLUMNS) == _expected(bars)  # nothing doubled

    # A replaced file: a corrected close, one hour dropped; importing it converges to the new file exactly.
    corrected = [dict(b) for b in bars if b["open_time"] != HOURLY_START + timedelta(hours=30)]
    corrected[10]["close"] = corrected[10]["high"]
    _write_hourly(hourly, corrected, bad_rows=False)
    third = _import(state, hourly)
    assert third.returncode == 0, third.stderr
    assert _comparable(_table(state, "BTCUSD"), COLUMNS) == _expected(corrected)


def test_daily_file_and_a_file_that_is_not_in_the_layout(tmp_path: Path, state: Path) -> None:
    bars = [{**b, "trade_count": None} for b in _bars(DAILY_START, timedelta(days=1), 40, seed=8)]
    daily = tmp_path / "Gemini_ETHUSD_d.csv"
    _write_daily(daily, bars)
    garbage = tmp_path / "notes.csv"
    garbage.write_text("hello\nthis,is,not,ohlcv\n", encoding="utf-8")

    result = _import(state, daily, garbage, exchange="Gemini")
    assert result.returncode == 1  # one file could not be imported: said, and the other one still imported
    assert "notes.csv: not imported: notes.csv: no header with date, symbol" in result.stderr
    assert "40 1d bars of gemini ETHUSD" in result.stdout
    rows = _table(state, "ETHUSD")
    assert _comparable(rows, COLUMNS) == _expected(bars)
    assert {r["interval"] for r in rows.values()} == {"1d"}


def test_numbers_too_large_for_the_table_are_refused_not_a_crash(tmp_path: Path) -> None:
    """30 integer digits fit no DECIMAL(38, 12) (and overflowed Python's default 28-digit context): refused rows."""
    from cryptolake.history.csv_ohlcv import read_csv

    path = tmp_path / "Odd_BTCUSD_d.csv"
    path.write_text(
        "https://www.CryptoDataDownload.com\ndate,symbol,open,high,low,close,Volume BTC,Volume USD\n"
        "2016-05-02,BTC/USD,1,2,0.5,1.5,10,15\n"
        f"2016-05-01,BTC/USD,1,{'9' * 30}.5,0.5,1.5,10,15\n"
        "2016-04-30,BTC/USD,1,2,0.5,1.5,1e999999,15\n",
        encoding="utf-8",
    )
    parsed = read_csv(path, "odd")
    assert [row["open_time"].day for row in parsed.rows] == [2]
    assert [(line, reason.split(":")[0]) for line, reason in parsed.rejected] == [(4, "bad_number"), (5, "bad_number")]
