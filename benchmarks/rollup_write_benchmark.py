"""Benchmark: how a refresh writes the rolled-up Gold bars (5m to 1d) — MERGE on the grain against an overwrite of
the days the window touches — side by side in one Spark session.

1. In a temporary lakehouse, fills a table of 1-minute bars for ``--symbols`` symbols over one UTC day (every
   minute) and builds, for each bar length, two copies of the rolled-up bars table (Iceberg, days(open_time)).
2. Then ``--rounds`` times, for a ``--window-minutes`` window late in the day (each round a different one):
   * **before**: the bars starting in the window's buckets, rolled up from their minutes, MERGEd on
     (symbol, open_time) with the window on the target side — what the rollup models did before;
   * **now**: every bar of the window's day, rolled up from all of its minutes, written with ``INSERT OVERWRITE``
     (dynamic partition overwrite) — what ``dbt_project/macros/bars.sql`` does now;
   * **now, dbt's settings**: the same overwrite with dbt's statement settings (``dbt_statement_conf``: no
     adaptive execution, one shuffle partition), as dbt runs it.
   Each round writes the five tables one after the other, then two at a time (``CRYPTOLAKE_DBT_THREADS``' default),
   for each variant, in rotating order. The first ``--warmup`` rounds are not counted.
3. Checks that the copies of every table hold the same rows, prints the medians and the ratios, and writes the
   section "Rollup writes: MERGE against day overwrite" of ``docs/benchmarks.md``.

The aggregation is the OHLCV part of ``rollup_bars`` (the completeness join is left out of every variant alike).
Run: ``.venv/bin/python benchmarks/rollup_write_benchmark.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from docs_section import write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "Rollup writes: MERGE against day overwrite"
if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SECONDS = {"5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
STRATEGIES = ("merge", "overwrite", "overwrite_dbt")
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write the rolled-up bars of a refresh window with MERGE (before) and with an overwrite of "
        "the window's day (now), with the session's and with dbt's statement settings, side by side."
    )
    parser.add_argument("--symbols", type=int, default=5, help="symbols, each with a bar every minute (5)")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2024, 7, 1), help="the UTC day (2024-07-01)")
    parser.add_argument("--rounds", type=int, default=8, help="timed rounds (8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (2)")
    parser.add_argument("--window-minutes", type=int, default=10, help="minutes of each refresh window (10)")
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help=f"results file (default {DOCS_FILE})")
    parser.add_argument("--no-docs", action="store_true", help="do not write the results file")
    return parser.parse_args(argv)


def minutes_sql(day: date, symbols: int) -> str:
    """One day of deterministic 1-minute bars with exact decimals, as a Spark query."""
    start = datetime.combine(day, datetime.min.time(), UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"""
        select 'binance' as exchange, 'spot' as market, concat('S', s, 'USDT') as symbol,
               timestamp '{start}' + make_interval(0, 0, 0, 0, 0, m, 0) as minute,
               cast(100 + s + m / 1000.0 as decimal(28, 8)) as open,
               cast(101 + s + m / 1000.0 as decimal(28, 8)) as high,
               cast(99 + s + m / 1000.0 as decimal(28, 8)) as low,
               cast(100.5 + s + m / 1000.0 as decimal(28, 8)) as close,
               cast(1 + (m % 7) / 8.0 as decimal(38, 8)) as volume,
               cast((1 + (m % 7) / 8.0) * (100.5 + s) as decimal(38, 16)) as quote_volume,
               cast(10 + m % 13 as bigint) as trade_count
        from range(0, {symbols}) as s_(s) cross join range(0, 1440) as m_(m)
    """


def bucket(column: str, seconds: int) -> str:
    return f"timestamp_seconds(floor(unix_seconds({column}) / {seconds}) * {seconds})"


def rollup_sql(seconds: int, where: str) -> str:
    return f"""
        select exchange, market, symbol, {bucket("minute", seconds)} as open_time,
               min_by(open, minute) as open, max(high) as high, min(low) as low, max_by(close, minute) as close,
               sum(volume) as volume, sum(quote_volume) as quote_volume, sum(trade_count) as trade_count,
               count(*) as minute_count
        from bench.minutes where {where}
        group by exchange, market, symbol, {bucket("minute", seconds)}
    """


def literal(ts: datetime) -> str:
    return f"timestamp '{ts.strftime('%Y-%m-%d %H:%M:%S')}'"


def merge(spark: SparkSession, name: str, seconds: int, lo: datetime, hi: datetime) -> None:
    """Before: the bars starting in the window's buckets, MERGEd on the grain with the window on the target side."""
    first = bucket(literal(lo), seconds)
    last = f"{bucket(literal(hi) + ' - interval 1 microsecond', seconds)} + interval {seconds} seconds"
    view = f"{name}_src"
    spark.sql(f"create or replace temporary view {view} as "
              + rollup_sql(seconds, f"minute >= {first} and minute < {last}"))  # fmt: skip
    spark.sql(f"""
        merge into bench.{name} as t using {view} as s
        on t.open_time >= {first} and t.open_time < {literal(hi)}
           and s.exchange = t.exchange and s.market = t.market and s.symbol = t.symbol and s.open_time = t.open_time
        when matched then update set * when not matched then insert *
    """)


def overwrite(spark: SparkSession, name: str, seconds: int, lo: datetime, hi: datetime) -> None:
    """Now: every bar of every UTC day the window touches, from all their minutes, overwriting those days."""
    first = f"date_trunc('DAY', {literal(lo)})"
    last = f"date_trunc('DAY', {literal(hi)} - interval 1 microsecond) + interval 1 day"
    view = f"{name}_src"
    spark.sql(f"create or replace temporary view {view} as "
              + rollup_sql(seconds, f"minute >= {first} and minute < {last}"))  # fmt: skip
    spark.sql(f"insert overwrite bench.{name} select * from {view}")


def write_all(spark: SparkSession, strategy: str, lo: datetime, hi: datetime, threads: int) -> float:
    """Seconds to write the five tables of ``strategy``, ``threads`` at a time (the session's settings are put back)."""
    from cryptolake.settings import Settings
    from cryptolake_dagster.defs.dbt.profile import dbt_statement_conf

    write: Callable[..., None] = merge if strategy == "merge" else overwrite
    conf = dbt_statement_conf(Settings()) if strategy == "overwrite_dbt" else {}
    saved = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    started = time.perf_counter()
    if threads == 1:
        for name, seconds in SECONDS.items():
            write(spark, f"bars_{name}_{strategy}", seconds, lo, hi)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda item: write(spark, f"bars_{item[0]}_{strategy}", item[1], lo, hi), SECONDS.items()))
    elapsed = time.perf_counter() - started
    for key, value in saved.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    state_dir = Path(tempfile.mkdtemp(prefix="cryptolake-rollup-bench-")) / "state"
    try:
        return run(args, state_dir)
    finally:
        shutil.rmtree(state_dir.parent, ignore_errors=True)


def measure(spark: SparkSession, args: argparse.Namespace) -> dict[tuple[str, int], list[float]] | None:
    """The timed rounds: seconds per (strategy, tables at a time); None when the two strategies' tables differ."""
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")  # as dbt-spark sets it
    spark.sql("create namespace if not exists bench")
    spark.sql(f"create table bench.minutes using iceberg partitioned by (days(minute)) as "
              f"{minutes_sql(args.day, args.symbols)}")  # fmt: skip
    for name, seconds in SECONDS.items():
        for strategy in STRATEGIES:
            spark.sql(f"create table bench.bars_{name}_{strategy} using iceberg partitioned by (days(open_time)) "
                      f"as {rollup_sql(seconds, 'true')}")  # fmt: skip
    log(f"{args.symbols} symbols x 1440 minutes of {args.day}; 5 bar tables x {len(STRATEGIES)} variants built")

    day_start = datetime.combine(args.day, datetime.min.time(), UTC)
    times: dict[tuple[str, int], list[float]] = {(s, t): [] for s in STRATEGIES for t in (1, 2)}
    for round_ in range(args.warmup + args.rounds):
        lo = day_start + timedelta(hours=20, minutes=round_ * args.window_minutes + 3)  # unaligned, late in the day
        hi = lo + timedelta(minutes=args.window_minutes)
        shift = round_ % len(STRATEGIES)
        order = STRATEGIES[shift:] + STRATEGIES[:shift]
        figures = []
        for threads in (1, 2):
            for strategy in order:
                elapsed = write_all(spark, strategy, lo, hi, threads)
                figures.append(f"{strategy} x{threads} {elapsed:.2f}s")
                if round_ >= args.warmup:
                    times[(strategy, threads)].append(elapsed)
        label = "warm-up" if round_ < args.warmup else f"round {round_ - args.warmup + 1}"
        log(f"{label} [{lo:%H:%M}, {hi:%H:%M}): {', '.join(figures)}")

    for name in SECONDS:
        merged, *others = (
            sorted(map(tuple, spark.table(f"bench.bars_{name}_{s}").orderBy("symbol", "open_time").collect()))
            for s in STRATEGIES
        )
        for strategy, rows in zip(STRATEGIES[1:], others, strict=True):
            if rows != merged:
                log(f"FAILED: bars_{name} differs between merge and {strategy}")
                return None
    log("every bar table holds the same rows with every strategy")
    return times


def run(args: argparse.Namespace, state_dir: Path) -> int:
    from cryptolake.lakehouse.spark import build_spark_session
    from cryptolake.settings import Settings

    settings = Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None)
    log(f"lakehouse in {state_dir}; starting Spark (not timed)")
    spark = build_spark_session(settings, "cryptolake-rollup-benchmark")
    try:
        times = measure(spark, args)
    finally:
        spark.stop()
    if times is None:
        return 1

    median = {key: statistics.median(values) for key, values in times.items()}
    rows = [
        f"| {threads} | {median[('merge', threads)]:.2f} | {median[('overwrite', threads)]:.2f} | "
        f"{median[('overwrite_dbt', threads)]:.2f} | {median[('overwrite', threads)] / median[('merge', threads)]:.2f} | "
        f"{median[('overwrite_dbt', threads)] / median[('overwrite', threads)]:.2f} |"
        for threads in (1, 2)
    ]
    for row in rows:
        log(row)
    body = "\n".join(
        [
            f"## {SECTION_TITLE}",
            "",
            f"Writing the five rolled-up bar tables (5m, 15m, 1h, 4h, 1d) of one refresh window "
            f"({args.window_minutes} minutes late in a day of {args.symbols} symbols), median of {args.rounds} rounds "
            f"after {args.warmup} warm-ups, in one Spark session (`local[2]`): before, a MERGE on the grain of the bars "
            "starting in the window; now, an overwrite of every bar of the window's day, with the session's settings "
            "and with dbt's statement settings (`dbt_statement_conf` in `cryptolake_dagster/defs/dbt/profile.py`: no "
            "adaptive execution, one shuffle partition), as dbt runs it. All give the same tables "
            f"(checked). `{os.cpu_count()}` cores. Command: `.venv/bin/python benchmarks/rollup_write_benchmark.py`.",
            "",
            "| tables written at a time | before: MERGE (s) | day overwrite (s) | day overwrite, dbt's settings (s) "
            "| overwrite / MERGE | dbt's settings / session's |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    if not args.no_docs:
        write_section(args.docs, SECTION_TITLE, body)
        log(f"wrote the section '{SECTION_TITLE}' of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
