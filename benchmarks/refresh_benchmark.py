"""Benchmark: from new trades to updated Gold bars — a refresh (reads what Bronze received since the day was last
written) beside the full-day rebuild and beside what every run did before, on a lakehouse holding a
4-million-trade day of 5 symbols.

1. Generates ``--trades`` Bronze trades of ``--symbols`` symbols over day D (00:00 to 23:50 UTC) and the first
   minutes of D+1 at the same rate, appends them to ``bronze.trades`` with pyiceberg in ``--commits`` commits, in a
   temporary lakehouse of its own, and builds both days in full with the real ``silver_gold_daily`` job (Silver,
   dbt Gold, dbt tests, Soda checks), in process, with one Dagster instance.
2. Then, ``--refreshes`` times each, appends one minute of trades (the day's rate) as one Bronze commit and runs
   the job for its day: **early-day** minutes go to D+1 (a day holding minutes of trades), **late-day** minutes to
   D (a day holding ``--trades``). Last, ``--full-runs`` times each, the **full-day rebuild** of D (the job tagged
   ``lake/refresh=full``, as backfills run) and the **before** run: the full-day rebuild with dbt in a subprocess
   (``CRYPTOLAKE_DBT_IN_PROCESS=false``), which is what every run did before refreshes.
3. Times each run from the Bronze commit to the first snapshot of ``gold.fct_ohlcv_1m`` after it (the Gold 1m
   bars readers see), to a new snapshot of every Gold bar table, and to the end of the run; prints them with the
   run's steps (from its event log), the medians, the late/early ratio and the targets, and writes them into the
   section "Refresh: new trades to Gold bars" of ``docs/benchmarks.md``.

The Spark session is started before the timings, as the platform's runs find it in the Spark host
(``cryptolake.lakehouse.spark_host``). The sensor's polling interval (30 s) is not in the figures. Run:
``.venv/bin/python benchmarks/refresh_benchmark.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from docs_section import write_section
from ohlcv_benchmark import decimal_array

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "Refresh: new trades to Gold bars"
TARGET_SECONDS = 15.0
TARGET_LATE_EARLY = 1.2
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time new trades -> updated Gold bars with the real silver_gold_daily job: a refresh of an "
        "early-day and a late-day minute beside the full-day rebuild, on a day of millions of trades."
    )
    parser.add_argument("--trades", type=int, default=4_000_000, help="trades of the full day D (4000000)")
    parser.add_argument("--symbols", type=int, default=5, help="symbols (5)")
    parser.add_argument("--day", type=date.fromisoformat, default=date(2024, 7, 1), help="day D (2024-07-01)")
    parser.add_argument("--commits", type=int, default=8, help="Bronze commits for the generated history (8)")
    parser.add_argument("--refreshes", type=int, default=3, help="early-day and late-day refreshes, each (3)")
    parser.add_argument("--full-runs", type=int, default=1, help="full-day rebuilds of D (1)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument("--state-dir", type=Path, help="lakehouse state directory (default: a new temporary one)")
    parser.add_argument("--keep-state", action="store_true", help="keep the temporary state directory")
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help=f"results file (default {DOCS_FILE})")
    parser.add_argument("--no-docs", action="store_true", help="do not write the results file")
    return parser.parse_args(argv)


class Market:
    """Trades of ``symbols`` symbols at a fixed rate, with increasing ids and a random walk of prices."""

    def __init__(self, symbols: int, per_day: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.symbols = [f"B{i}XUSDT" for i in range(symbols)]
        self.per_ms = per_day / 86_400_000
        self.next_id = {s: 1_000_000_000 * (i + 1) for i, s in enumerate(self.symbols)}
        self.price = {s: 1_000 * (i + 1) * 10**8 for i, s in enumerate(self.symbols)}
        self.offset = 0

    def between(self, start: datetime, end: datetime, schema: pa.Schema) -> pa.Table:
        """The trades in [start, end), in arrival order, as Bronze rows."""
        span_ms = int((end - start).total_seconds() * 1000)
        start_us = int(start.timestamp()) * 1_000_000
        parts = []
        for symbol in self.symbols:
            count = int(self.rng.poisson(self.per_ms * span_ms / len(self.symbols)))
            trade_ms = np.sort(self.rng.integers(0, span_ms, count))
            ids = self.next_id[symbol] + np.arange(count, dtype=np.int64)
            self.next_id[symbol] += count
            steps = self.rng.integers(-400, 401, count) * 1_000_000
            price = np.maximum(self.price[symbol] + np.cumsum(steps), 10**8)
            if count:
                self.price[symbol] = int(price[-1])
            parts.append((symbol, trade_ms, ids, price, self.rng.integers(1, 5 * 10**8, count)))
        total = sum(len(p[1]) for p in parts)
        symbol = np.concatenate([np.full(len(p[1]), p[0], dtype=object) for p in parts])
        trade_ms = np.concatenate([p[1] for p in parts])
        ids = np.concatenate([p[2] for p in parts])
        price = np.concatenate([p[3] for p in parts])
        quantity = np.concatenate([p[4] for p in parts])
        order = np.argsort(trade_ms, kind="stable")  # arrival order
        symbol, trade_ms, ids, price, quantity = (a[order] for a in (symbol, trade_ms, ids, price, quantity))
        maker = self.rng.random(total) < 0.5
        trade_us = start_us + trade_ms * 1000
        ingest_us = trade_us + self.rng.integers(5_000, 250_000, total)
        price_array, quantity_array = decimal_array(price, 28, 8), decimal_array(quantity, 28, 8)
        quote = pc.multiply(price_array.cast(pa.decimal256(28, 8)), quantity_array.cast(pa.decimal256(28, 8)))

        def ts(values: np.ndarray) -> pa.Array:
            return pa.array(values, type=pa.timestamp("us", tz="UTC"))

        def const(value: Any, kind: pa.DataType) -> pa.Array:
            return pa.array([value] * total, kind)

        columns = {
            "schema_version": const(1, pa.int32()),
            "exchange": const("binance", pa.string()),
            "market": const("spot", pa.string()),
            "symbol": pa.array(symbol.tolist(), pa.string()),
            "base_asset": pa.array([s.removesuffix("USDT") for s in symbol.tolist()], pa.string()),
            "quote_asset": const("USDT", pa.string()),
            "coin_id": const(None, pa.string()),
            "agg_trade_id": pa.array(ids),
            "first_trade_id": pa.array(ids * 3),
            "last_trade_id": pa.array(ids * 3 + 2),
            "price": price_array,
            "quantity": quantity_array,
            "quote_quantity": quote.cast(pa.decimal128(38, 16)),
            "side": pa.array(np.where(maker, "sell", "buy").tolist(), pa.string()),
            "is_buyer_maker": pa.array(maker),
            "trade_time": ts(trade_us),
            "event_time": ts(trade_us),
            "ingest_time": ts(ingest_us),
            "source": const("ws", pa.string()),
            "kafka_topic": const("cryptolake.trades.v1", pa.string()),
            "kafka_partition": const(0, pa.int32()),
            "kafka_offset": pa.array(self.offset + np.arange(total, dtype=np.int64)),
            "bronze_written_at": ts(ingest_us + 1_000_000),
        }
        self.offset += total
        return pa.Table.from_arrays([columns[field.name] for field in schema], schema=schema)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    temporary = args.state_dir is None
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="cryptolake-bench-")) / "state").resolve()
    os.environ["CRYPTOLAKE_STATE_DIR"] = str(state_dir)
    os.environ.setdefault("DAGSTER_HOME", str(state_dir / "dagster"))
    (state_dir / "dagster").mkdir(parents=True, exist_ok=True)
    try:
        return run(args, state_dir)
    finally:
        if temporary and not args.keep_state:
            shutil.rmtree(state_dir.parent, ignore_errors=True)
        elif temporary:
            log(f"state kept in {state_dir}")


STEPS = ("silver/trades", "silver/ohlcv_1m", "dbt build", "checks")


def _step_label(step_key: str) -> str:
    if step_key == "silver_trades":
        return "silver/trades"
    if "silver" in step_key and "ohlcv_1m" in step_key:
        return "silver/ohlcv_1m"
    return "dbt build" if step_key == "gold_dbt_models" else "checks"


def step_times(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds per step of the run (STEP_START to STEP_SUCCESS), summed per label of STEPS (``checks``: the asset
    check steps)."""
    started: dict[str, float] = {}
    spent = dict.fromkeys(STEPS, 0.0)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in started:
            spent[_step_label(event.step_key)] += entry.timestamp - started[event.step_key]
    return spent


def gold_updated(catalog: Any, tables: tuple[str, ...], since: float) -> float:
    """Seconds from ``since`` (a wall-clock time) until every table of ``tables`` had a snapshot committed after it
    (NaN when one has none)."""
    latest = 0.0
    for name in tables:
        stamps = [s.timestamp_ms / 1000 for s in catalog.load_table(name).snapshots() if s.timestamp_ms / 1000 >= since]
        if not stamps:
            return float("nan")
        latest = max(latest, min(stamps))
    return latest - since


@dataclass
class Timing:
    """One run: seconds from the Bronze commit to the Gold 1-minute bars, to every Gold bar table, to the end of
    the run (checks included), and its steps."""

    to_1m: float
    to_bars: float
    to_done: float
    steps: dict[str, float]
    per_table: dict[str, float]


def run(args: argparse.Namespace, state_dir: Path) -> int:
    import dagster as dg

    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
    from cryptolake.lakehouse.spark import build_spark_session
    from cryptolake.settings import Settings
    from cryptolake.tables import BRONZE_TRADES, GOLD_BAR_TABLES, GOLD_OHLCV_1M
    from cryptolake_dagster.definitions import build_definitions
    from cryptolake_dagster.refreshes import REFRESH_TAG

    settings = Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None)
    day = datetime.combine(args.day, datetime.min.time(), UTC)
    next_day = day + timedelta(days=1)
    load_before = os.getloadavg()
    log(f"lakehouse in {state_dir}")
    catalog = bootstrap_lakehouse(settings)
    bronze = catalog.load_table(BRONZE_TRADES.identifier)
    schema = bronze.schema().as_arrow()
    market = Market(args.symbols, args.trades * 86_400 // (86_400 - 600), args.seed)

    log(f"generating {args.trades:,} trades of {args.symbols} symbols on {args.day} and D+1's first 5 minutes")
    chunk = (day + timedelta(hours=23, minutes=50) - day) / args.commits
    for i in range(args.commits):
        bronze.append(market.between(day + chunk * i, day + chunk * (i + 1), schema))
        log(f"  appended commit {i + 1}/{args.commits}")
    bronze.append(market.between(next_day, next_day + timedelta(minutes=5), schema))

    log("starting Spark (not timed)")
    spark = build_spark_session(settings, "cryptolake-benchmark")
    spark.sql("SELECT 1").collect()
    job = build_definitions(settings).resolve_job_def("silver_gold_daily")
    # Before: dbt in a subprocess with a Spark JVM of its own, and the day rebuilt in full by every run.
    job_before = build_definitions(settings.model_copy(update={"dbt_in_process": False})).resolve_job_def(
        "silver_gold_daily"
    )
    instance = dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    bars = GOLD_BAR_TABLES

    def run_job(partition: datetime, full: bool = False, before: bool = False, since: float | None = None) -> Timing:
        since = time.time() if since is None else since
        result = (job_before if before else job).execute_in_process(
            partition_key=partition.date().isoformat(),
            instance=instance,
            run_config=quiet,
            tags={REFRESH_TAG: "full"} if full else None,
        )
        done = time.time() - since
        assert result.success
        per_table = {name: gold_updated(catalog, (name,), since) for name in bars}
        return Timing(
            per_table[GOLD_OHLCV_1M],
            max(per_table.values(), key=lambda seconds: (seconds != seconds, seconds)),  # NaN: a table not updated
            done,
            step_times(instance, result.run_id),
            {name.split(".")[-1]: seconds for name, seconds in per_table.items()},
        )

    def describe(timing: Timing) -> str:
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in timing.steps.items())
        steps += "; bar tables at " + ", ".join(f"{k} {v:.1f}s" for k, v in timing.per_table.items())
        return (
            f"Gold 1m bars {timing.to_1m:.1f}s, all bars {timing.to_bars:.1f}s, run done {timing.to_done:.1f}s "
            f"({steps})"
        )

    for partition in (day, next_day):
        timing = run_job(partition)
        log(f"built {partition:%Y-%m-%d} in full: {timing.to_done:.1f}s")

    runs: dict[str, list[Timing]] = {"early": [], "late": [], "full": [], "before": []}
    minute = {"early": next_day + timedelta(minutes=5), "late": day + timedelta(hours=23, minutes=50)}
    for number in range(args.refreshes):
        for kind in ("early", "late"):
            trades = market.between(minute[kind], minute[kind] + timedelta(minutes=1), schema)
            since = time.time()
            bronze.append(trades)
            timing = run_job(minute[kind], since=since)
            runs[kind].append(timing)
            log(
                f"{kind}-day refresh {number + 1} ({trades.num_rows:,} trades at {minute[kind]:%H:%M}): {describe(timing)}"
            )
            minute[kind] += timedelta(minutes=1)
    for number in range(args.full_runs):
        for kind, before in (("full", False), ("before", True)):
            trades = market.between(minute["late"], minute["late"] + timedelta(minutes=1), schema)
            since = time.time()
            bronze.append(trades)
            timing = run_job(day, full=True, before=before, since=since)
            runs[kind].append(timing)
            label = "full-day rebuild, dbt in a subprocess (before)" if before else "full-day rebuild"
            log(f"{label} {number + 1} of {args.day} (+{trades.num_rows:,} trades): {describe(timing)}")
            minute["late"] += timedelta(minutes=1)

    gold_latest = spark.sql(f"SELECT max(open_time) AS latest FROM {GOLD_OHLCV_1M} WHERE symbol = 'B0XUSDT'").first()
    log(f"newest Gold 1m bar of B0XUSDT: {gold_latest['latest']}")
    spark.stop()

    early = statistics.median(t.to_1m for t in runs["early"])
    late = statistics.median(t.to_1m for t in runs["late"])
    early_bars = statistics.median(t.to_bars for t in runs["early"])
    late_bars = statistics.median(t.to_bars for t in runs["late"])
    before = statistics.median(t.to_1m for t in runs["before"]) if runs["before"] else float("nan")
    verdicts = [
        f"refresh to Gold 1m bars <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if max(early, late) <= TARGET_SECONDS else 'NOT met'} (early {early:.1f} s, late {late:.1f} s)",
        f"late-day within 20% of early-day: {'met' if late <= TARGET_LATE_EARLY * early else 'NOT met'} "
        f"(late/early {late / early:.2f})",
        f"before (every run rebuilt the day with dbt in a subprocess): {before:.1f} s to Gold 1m bars; a refresh "
        f"takes {max(early, late) / before:.0%} of it",
        f"refresh to every Gold bar table (5m to 1d rolled up after the 1m bars) <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if max(early_bars, late_bars) <= TARGET_SECONDS else 'NOT met'} "
        f"(early {early_bars:.1f} s, late {late_bars:.1f} s)",
    ]
    for line in verdicts:
        log(line)
    if not args.no_docs:
        write_section(args.docs, SECTION_TITLE, render(args, runs, verdicts, load_before))
        log(f"wrote section '{SECTION_TITLE}' of {args.docs}")
    return 0


def render(
    args: argparse.Namespace, runs: dict[str, list[Timing]], verdicts: list[str], load_before: tuple[float, ...]
) -> str:
    from cryptolake.settings import Settings

    rows = [
        ("early-day minute (refresh)", runs["early"]),
        ("late-day minute (refresh)", runs["late"]),
        ("full-day rebuild (backfills, lake/refresh=full)", runs["full"]),
        ("before: every run, full day, dbt in a subprocess", runs["before"]),
    ]
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`.venv/bin/python benchmarks/refresh_benchmark.py` — {args.trades:,} trades of {args.symbols} symbols on "
        f"day D; per refresh one minute of trades (the day's rate) appended to Bronze, then the real "
        f"`silver_gold_daily` job in process on a warm Spark session (as a run attached to the platform's Spark "
        f"host). Seconds from the Bronze commit to the first Gold snapshot of `fct_ohlcv_1m`, of every Gold bar "
        f"table, and to the end of the run (dbt tests and Soda checks included). Median of {args.refreshes} "
        f"refreshes each, {args.full_runs} rebuild(s) each; dbt threads {Settings().dbt_threads} "
        f"(`CRYPTOLAKE_DBT_THREADS`); load average before {load_before[0]:.2f}.",
        "",
        "| run | to Gold 1m bars | to all Gold bars | run done | silver/trades | silver/ohlcv_1m | dbt | checks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, items in rows:
        if items:
            figures = [
                statistics.median(t.to_1m for t in items),
                statistics.median(t.to_bars for t in items),
                statistics.median(t.to_done for t in items),
                *(statistics.median(t.steps[step] for t in items) for step in STEPS),
            ]
            lines.append(f"| {label} | " + " | ".join(f"{value:.1f}" for value in figures) + " |")
    lines += ["", *(f"- {line}" for line in verdicts)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
