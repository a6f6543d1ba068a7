"""Benchmark: from new trades to updated Gold bars — a refresh (reads what Bronze received since the day was last
written) beside the full-day rebuild, on a lakehouse holding a 4-million-trade day of 5 symbols.

1. Generates ``--trades`` Bronze trades of ``--symbols`` symbols over day D (00:00 to 23:50 UTC) and the first
   minutes of D+1 at the same rate, appends them to ``bronze.trades`` with pyiceberg in ``--commits`` commits, in a
   temporary lakehouse of its own, and builds both days in full with the real ``silver_gold_daily`` job (Silver,
   dbt Gold, Soda checks), in process, with one Dagster instance.
2. Then, ``--refreshes`` times each, appends one minute of trades (the day's rate) as one Bronze commit and runs
   the job for its day, timing commit -> run finished: **early-day** minutes go to D+1 (a day holding minutes of
   trades), **late-day** minutes to D (a day holding ``--trades``). Last, the **full-day rebuild** of D (the job
   tagged ``lake/refresh=full``, what every run did before refreshes), ``--full-runs`` times.
3. Prints each run's time with its steps (silver/trades, silver/ohlcv_1m, the dbt build, the checks) from the
   run's event log, the medians, the late/early ratio and the targets, and writes them into the section "Refresh:
   new trades to Gold bars" of ``docs/benchmarks.md``.

The Spark session is started before the timings (as a long-running run worker would hold it); dbt still starts
its own Spark in a subprocess for every run, so its start-up is in every figure. Run:
``.venv/bin/python benchmarks/refresh_benchmark.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
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


STEPS = (("silver/trades", "silver_trades"), ("silver/ohlcv_1m", "silver_ohlcv_1m"), ("dbt build", "gold_dbt_models"))


def step_times(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds per step of the run (STEP_START to STEP_SUCCESS); ``checks``: all other steps together."""
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in started:
            spent[event.step_key] = entry.timestamp - started[event.step_key]
    named = {label: spent.pop(key, 0.0) for label, key in STEPS}
    return {**named, "checks": sum(spent.values())}


def run(args: argparse.Namespace, state_dir: Path) -> int:
    import dagster as dg

    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
    from cryptolake.lakehouse.spark import build_spark_session
    from cryptolake.settings import Settings
    from cryptolake.tables import BRONZE_TRADES, GOLD_OHLCV_1M
    from cryptolake_dagster.definitions import load_definitions
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
    job = load_definitions().resolve_job_def("silver_gold_daily")
    instance = dg.DagsterInstance.ephemeral()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def run_job(partition: datetime, full: bool = False) -> tuple[float, dict[str, float], dict[str, Any]]:
        t0 = time.perf_counter()
        result = job.execute_in_process(
            partition_key=partition.date().isoformat(),
            instance=instance,
            run_config=quiet,
            tags={REFRESH_TAG: "full"} if full else None,
        )
        seconds = time.perf_counter() - t0
        assert result.success
        meta = {
            f"{e.asset_key.path[-1]}.{k}": v.value
            for e in result.get_asset_materialization_events()
            if e.asset_key.path[-1] in ("trades", "ohlcv_1m")
            for k, v in e.materialization.metadata.items()
        }
        return seconds, step_times(instance, result.run_id), meta

    for partition in (day, next_day):
        seconds, _, meta = run_job(partition)
        log(f"built {partition:%Y-%m-%d} in full: {seconds:.1f}s ({meta.get('trades.rows', 0):,} Silver trades)")

    runs: dict[str, list[tuple[float, dict[str, float], dict[str, Any]]]] = {"early": [], "late": []}
    minute = {"early": next_day + timedelta(minutes=5), "late": day + timedelta(hours=23, minutes=50)}
    for number in range(args.refreshes):
        for kind in ("early", "late"):
            trades = market.between(minute[kind], minute[kind] + timedelta(minutes=1), schema)
            t0 = time.perf_counter()
            bronze.append(trades)
            commit = time.perf_counter() - t0
            seconds, steps, meta = run_job(minute[kind])
            runs[kind].append((commit + seconds, steps, meta))
            assert meta.get("trades.days_refreshed") == 1, meta
            log(
                f"{kind}-day refresh {number + 1} ({trades.num_rows:,} trades at {minute[kind]:%Y-%m-%d %H:%M}): "
                f"{commit + seconds:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in steps.items())})"
            )
            minute[kind] += timedelta(minutes=1)
    full_runs = []
    for number in range(args.full_runs):
        seconds, steps, _ = run_job(day, full=True)
        full_runs.append((seconds, steps, {}))
        log(
            f"full-day rebuild {number + 1} of {args.day}: {seconds:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in steps.items())})"
        )

    gold_latest = spark.sql(f"SELECT max(open_time) AS latest FROM {GOLD_OHLCV_1M} WHERE symbol = 'B0XUSDT'").first()
    log(f"newest Gold 1m bar of B0XUSDT: {gold_latest['latest']}")
    spark.stop()

    early = statistics.median(r[0] for r in runs["early"])
    late = statistics.median(r[0] for r in runs["late"])
    full = statistics.median(r[0] for r in full_runs) if full_runs else float("nan")
    verdicts = [
        f"refresh <= {TARGET_SECONDS:.0f} s: {'met' if max(early, late) <= TARGET_SECONDS else 'NOT met'} "
        f"(early {early:.1f} s, late {late:.1f} s)",
        f"late-day within 20% of early-day: {'met' if late <= TARGET_LATE_EARLY * early else 'NOT met'} "
        f"(late/early {late / early:.2f})",
        f"full-day rebuild {full:.1f} s: a refresh takes {max(early, late) / full:.0%} of it",
    ]
    for line in verdicts:
        log(line)
    if not args.no_docs:
        write_section(args.docs, SECTION_TITLE, render(args, runs, full_runs, verdicts, load_before))
        log(f"wrote section '{SECTION_TITLE}' of {args.docs}")
    return 0


def render(
    args: argparse.Namespace,
    runs: dict[str, list[tuple[float, dict[str, float], dict[str, Any]]]],
    full_runs: list[tuple[float, dict[str, float], dict[str, Any]]],
    verdicts: list[str],
    load_before: tuple[float, float, float],
) -> str:
    def median_steps(items: list[tuple[float, dict[str, float], dict[str, Any]]]) -> list[str]:
        labels = [label for label, _ in STEPS] + ["checks"]
        return [f"{statistics.median(i[1][label] for i in items):.1f}" for label in labels]

    rows = [
        ("early-day minute (refresh)", runs["early"]),
        ("late-day minute (refresh)", runs["late"]),
        ("full-day rebuild (before: every run)", full_runs),
    ]
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"`.venv/bin/python benchmarks/refresh_benchmark.py` — {args.trades:,} trades of {args.symbols} symbols on "
        f"day D, one minute of trades (the day's rate) appended per refresh; the real `silver_gold_daily` job in "
        f"process with a warm Spark session (dbt starts its own Spark per run). Median of "
        f"{args.refreshes} refreshes each, {args.full_runs} full rebuild(s); load average before "
        f"{load_before[0]:.2f}.",
        "",
        "| run | commit to Gold (s) | silver/trades | silver/ohlcv_1m | dbt build | checks |",
        "|---|---|---|---|---|---|",
    ]
    for label, items in rows:
        if items:
            lines.append(
                f"| {label} | {statistics.median(i[0] for i in items):.1f} | " + " | ".join(median_steps(items)) + " |"
            )
    lines += ["", *(f"- {line}" for line in verdicts)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
