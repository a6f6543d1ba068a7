"""A refresh (Silver reads only what Bronze received since the day was last written; Gold rebuilds only the bars and
days of the minutes it touched) gives the tables a full rebuild gives: over two days across midnight, with
duplicates inside a commit and across commits, late and out-of-order trades and rejected rows.

The real ``silver_gold_daily`` job runs against the session lakehouse, one Dagster instance for the whole series
(the bars' refresh mark is the asset's last materialization)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
from pyiceberg.expressions import In

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import (
    GOLD_COMPLETENESS_1M,
    GOLD_COMPLETENESS_DAILY,
    GOLD_FUTURES_DAILY,
    GOLD_OHLCV_1D,
    GOLD_OHLCV_1H,
    GOLD_OHLCV_1M,
    GOLD_OHLCV_4H,
    GOLD_OHLCV_5M,
    GOLD_OHLCV_15M,
    SILVER_OHLCV_1M,
    SILVER_TRADES,
    SILVER_TRADES_QUARANTINE,
)
from cryptolake_dagster.asset_keys import SILVER_OHLCV_1M_KEY, SILVER_TRADES_KEY
from cryptolake_dagster.refreshes import REFRESH_TAG
from cryptolake_dagster_tests.silver.test_silver_trades import (
    SILVER_KEYS,
    append_bronze,
    assert_bars_equal,
    bronze_row,
    copy_of,
    expected_bars,
    expected_silver,
)

MIDNIGHT = datetime(2024, 6, 11, tzinfo=UTC)
DAYS = (date(2024, 6, 10), date(2024, 6, 11))
SERIES = (("RFAUSDT", "spot"), ("RFAUSDT", "usdm_futures"), ("RFBUSDT", "spot"))
SYMBOLS = sorted({symbol for symbol, _ in SERIES})
GOLD_TABLES = (
    GOLD_OHLCV_1M, GOLD_OHLCV_5M, GOLD_OHLCV_15M, GOLD_OHLCV_1H, GOLD_OHLCV_4H, GOLD_OHLCV_1D, GOLD_COMPLETENESS_1M,
    GOLD_COMPLETENESS_DAILY, GOLD_FUTURES_DAILY,
)  # fmt: skip
#: Columns that tell when a row was written, not what it holds.
WRITE_TIMES = {"quarantined_at", "built_at"}


class Trades:
    """The series' trades with increasing aggregate ids; the odd ids are kept back to arrive late."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = {series: 7_000_000 * (i + 1) for i, series in enumerate(SERIES)}
        self.price = {series: Decimal(self.rng.randint(100, 50_000)) for series in SERIES}
        self.held_back: list[dict[str, Any]] = []

    def between(self, start: datetime, end: datetime, per_series: int) -> list[dict[str, Any]]:
        rows = []
        for series in SERIES:
            symbol, market = series
            moments = sorted(start + (end - start) * self.rng.random() for _ in range(per_series))
            for moment in moments:
                moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
                self.price[series] = max(
                    Decimal("0.01"), self.price[series] + self.rng.randint(-500, 500) / Decimal(100)
                )
                row = bronze_row(
                    symbol, self.next_id[series], self.price[series], Decimal(self.rng.randint(1, 10**8)) / 10**8,
                    moment, market=market, buyer_maker=self.rng.random() < 0.5, partition=self.rng.randint(0, 2),
                )  # fmt: skip
                late = bronze_row(
                    symbol, self.next_id[series] + 1, self.price[series] + 1, "0.5", moment, market=market,
                    ingest_time=moment + timedelta(minutes=30), partition=1,
                )  # fmt: skip
                self.next_id[series] += 2
                rows.append(row)
                if self.rng.random() < 0.2:
                    self.held_back.append(late)
        self.rng.shuffle(rows)  # arrival order (Kafka offsets) differs from the id order
        return rows

    def late(self) -> list[dict[str, Any]]:
        rows, self.held_back = self.held_back, []
        return rows


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def run_day(instance: dg.DagsterInstance, day: date, *, gold: bool, full: bool = False) -> dict[str, Any]:
    """One ``silver_gold_daily`` run of ``day`` (Silver only, or with Gold); the Silver steps' metadata."""
    from cryptolake_dagster.definitions import load_definitions

    job = load_definitions().resolve_job_def("silver_gold_daily")
    result = job.execute_in_process(
        partition_key=day.isoformat(),
        asset_selection=None if gold else SILVER_KEYS,
        instance=instance,
        tags={REFRESH_TAG: "full"} if full else None,
    )
    assert result.success
    metadata = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key in (SILVER_TRADES_KEY, SILVER_OHLCV_1M_KEY):
            for name, value in event.materialization.metadata.items():
                metadata[f"{event.asset_key.path[-1]}.{name}"] = value.value
    for evaluation in result.get_asset_check_evaluations():
        if "window" in evaluation.metadata:
            metadata[f"{evaluation.check_name}.window"] = evaluation.metadata["window"].value
    return metadata


def content(settings: Settings, identifier: str) -> list[tuple]:
    """The series' rows of a table, without write times, in a stable order."""
    rows = rows_of(settings, identifier)
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in WRITE_TIMES)) for row in rows)


def snapshot_tables(settings: Settings, tables: tuple[str, ...]) -> dict[str, list[tuple]]:
    return {identifier: content(settings, identifier) for identifier in tables}


SILVER_TABLES = (SILVER_TRADES.identifier, SILVER_TRADES_QUARANTINE.identifier, SILVER_OHLCV_1M.identifier)


def in_days(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if MIDNIGHT - timedelta(days=1) <= r["trade_time"] < MIDNIGHT + timedelta(days=1)]


def test_a_refresh_gives_the_tables_of_a_full_rebuild(settings, spark, instance) -> None:
    trades = Trades(20240610)
    bronze: list[dict[str, Any]] = []

    def commit(rows: list[dict[str, Any]]) -> None:
        append_bronze(settings, rows)
        bronze.extend(rows)

    # 1. The first commit: both days built in full (no mark yet).
    first = trades.between(MIDNIGHT - timedelta(minutes=12), MIDNIGHT + timedelta(minutes=6), 40)
    commit([*first, copy_of(first[3]), copy_of(first[7], kafka_partition=2)])  # duplicates inside the commit
    for day in DAYS:
        meta = run_day(instance, day, gold=False)
        assert (meta["trades.days_rebuilt"], meta["trades.days_refreshed"]) == (1, 0)

    # 2. New trades after midnight, late trades of both days, a rejected row: both days refreshed.
    rejected = bronze_row(SERIES[0][0], 6_999_999, "0", "1", MIDNIGHT - timedelta(minutes=3))
    commit([*trades.between(MIDNIGHT + timedelta(minutes=6), MIDNIGHT + timedelta(minutes=9), 15), *trades.late(),
            rejected])  # fmt: skip
    for day in DAYS:
        meta = run_day(instance, day, gold=False)
        assert (meta["trades.days_rebuilt"], meta["trades.days_refreshed"]) == (0, 1), meta
        assert meta["ohlcv_1m.minutes_refreshed"] > 0 and meta["ohlcv_1m.days_rebuilt"] == 0, meta
        # The refresh's Silver checks scan the refreshed minutes, not the day.
        new_trades = f"[{meta['trades.refreshed_from']}, {meta['trades.refreshed_to']})"
        assert meta["soda_silver_trades.window"] == new_trades, meta
        bars = f"[{meta['ohlcv_1m.refreshed_from']}, {meta['ohlcv_1m.refreshed_to']})"
        assert meta["soda_silver_ohlcv_1m.window"] == bars, meta

    # 3. A later copy of a trade Silver holds (it may win the first occurrence): that day is rebuilt in full.
    early_copy = copy_of(first[0], ingest_time=first[0]["ingest_time"] - timedelta(seconds=1), kafka_partition=2)
    after = next(r for r in bronze if r["trade_time"] >= MIDNIGHT and r["price"] > 0)
    commit([copy_of(after), *trades.between(MIDNIGHT - timedelta(minutes=2), MIDNIGHT, 5)])
    held_day = first[0]["trade_time"].date()
    commit([early_copy])
    results = {day: run_day(instance, day, gold=False) for day in DAYS}
    assert results[DAYS[1]]["trades.days_rebuilt"] == 1  # the copy of `after`
    assert results[held_day]["trades.days_rebuilt"] == 1

    # Silver equals the independent recomputation of every Bronze row so far.
    latest = datetime.now(UTC)
    want = expected_silver(in_days(bronze), latest)
    got = {
        (r["exchange"], r["market"], r["symbol"], r["agg_trade_id"]): r
        for r in rows_of(settings, SILVER_TRADES.identifier)
    }
    assert got == want
    assert_bars_equal(rows_of(settings, SILVER_OHLCV_1M.identifier), expected_bars(want.values()))

    # 4. Everything rebuilt in full, Gold included: Silver does not change.
    silver_refreshed = snapshot_tables(settings, SILVER_TABLES)
    for day in DAYS:
        run_day(instance, day, gold=True, full=True)
    assert snapshot_tables(settings, SILVER_TABLES) == silver_refreshed

    # 5. Another refresh of both days with Gold (which rebuilds only the refreshed minutes' bars and days) ...
    commit([*trades.between(MIDNIGHT + timedelta(minutes=9), MIDNIGHT + timedelta(minutes=75), 20), *trades.late(),
            bronze_row(SERIES[2][0], 6_999_998, "5", "0", MIDNIGHT - timedelta(seconds=1), market=SERIES[2][1])])  # fmt: skip
    for day in DAYS:
        meta = run_day(instance, day, gold=True)
        assert meta["trades.days_refreshed"] == 1, meta
    refreshed = snapshot_tables(settings, (*SILVER_TABLES, *GOLD_TABLES))
    # ... and a full rebuild of both days: the same tables, Gold included.
    for day in DAYS:
        run_day(instance, day, gold=True, full=True)
    rebuilt = snapshot_tables(settings, (*SILVER_TABLES, *GOLD_TABLES))
    for identifier, rows in rebuilt.items():
        assert rows, identifier
        only_refreshed = sorted(set(refreshed[identifier]) - set(rows))[:3]
        only_rebuilt = sorted(set(rows) - set(refreshed[identifier]))[:3]
        assert refreshed[identifier] == rows, (identifier, only_refreshed, only_rebuilt)
    want = expected_silver(in_days(bronze), datetime.now(UTC))
    assert {
        (r["exchange"], r["market"], r["symbol"], r["agg_trade_id"]): r
        for r in rows_of(settings, SILVER_TRADES.identifier)
    } == want


def rows_of(settings: Settings, identifier: str) -> list[dict[str, Any]]:
    return get_catalog(settings).load_table(identifier).scan(row_filter=In("symbol", SYMBOLS)).to_arrow().to_pylist()
