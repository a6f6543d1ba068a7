"""Benchmark: import five years of daily klines for five symbols and build Gold for the range as ranged runs.

1. Generates, in a temporary directory, the monthly ``1d`` kline archives of ``--symbols`` for ``--months`` in
   Binance's official layout (``data/spot/monthly/klines/SYMBOL/1d/SYMBOL-1d-YYYY-MM.zip``, a CSV without header,
   millisecond times) with their ``.CHECKSUM`` files, as data.binance.vision publishes them (not timed).
2. Imports them with the real command, ``cryptolake import archive --root DIR`` (a subprocess, its own lakehouse in
   a temporary state directory), into ``bronze.binance_klines``.
3. Builds ``silver_gold_daily`` for every day of the months through the code ``cryptolake backfill`` runs
   (``run_backfill`` with the backfill's Dagster instance): ranged runs (``--days-per-run``, default the CLI's:
   the whole range in one run). Silver has no trades there, so its days are skipped from metadata; dbt builds
   whatever models the project holds over the whole range, and every check runs.
4. Times the previous implementation, one run per day, on the first ``--per-day-days`` days of the range in the
   same process (Spark already warm, which favours it), and extrapolates its cost per day to the whole range.
5. Prints each step's time, the rows of every Gold table, and both implementations side by side, then writes them
   into the section "History backfill" of ``docs/benchmarks.md`` (only that section is replaced).

Target: import + ranged build <= 5 minutes. Run: ``.venv/bin/python benchmarks/history_backfill_benchmark.py``.
"""

from __future__ import annotations

import argparse
import calendar
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from docs_section import write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "History backfill (ranged runs)"
TARGET_SECONDS = 300.0
SYMBOLS = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT"
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Import five years of daily Binance kline archives for five symbols with cryptolake import "
        "archive and build silver_gold_daily for the range as ranged runs; compare with one run per day.",
    )
    parser.add_argument("--symbols", default=SYMBOLS, help=f"comma-separated spot symbols ({SYMBOLS})")
    parser.add_argument("--months", default="2020-01:2024-12", help="first:last month (2020-01:2024-12)")
    parser.add_argument(
        "--days-per-run", type=int, help="most days per ranged run (default: the CLI's, the whole range in one run)"
    )
    parser.add_argument(
        "--per-day-days", type=int, default=3, help="days built one run per day for the comparison, 0 skips it (3)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (42)")
    parser.add_argument("--keep-state", action="store_true", help="keep the temporary directory (lakehouse, files)")
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help=f"results file (default {DOCS_FILE})")
    parser.add_argument("--no-docs", action="store_true", help="do not write the results file")
    return parser.parse_args(argv)


# --- the archives ------------------------------------------------------------------------------------------------


def months_of(spec: str) -> list[str]:
    first, _, last = spec.partition(":")
    year, month = map(int, first.split("-"))
    end = tuple(map(int, (last or first).split("-")))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


def month_lines(symbol_price: list[Decimal], month: str, rng: random.Random) -> list[str]:
    """The month's daily klines as Binance writes them: open time, OHLC, volume, close time (ms, ...999), quote
    volume, trades, taker buy base and quote volume, ignore. ``symbol_price`` carries the close across months."""
    year, number = map(int, month.split("-"))
    day = datetime(year, number, 1, tzinfo=UTC)
    lines = []
    while day.month == number:
        open_ = symbol_price[0]
        close = max(Decimal("0.0001"), open_ * (1 + Decimal(rng.randint(-800, 800)) / 10_000)).quantize(Decimal("1e-8"))
        high = (max(open_, close) * (1 + Decimal(rng.randint(0, 300)) / 10_000)).quantize(Decimal("1e-8"))
        low = (min(open_, close) * (1 - Decimal(rng.randint(0, 300)) / 10_000)).quantize(Decimal("1e-8"))
        volume = Decimal(rng.randint(10**8, 10**14)) / 10**8
        buy = (volume * Decimal(rng.randint(30, 70)) / 100).quantize(Decimal("1e-8"))
        quote, buy_quote = ((v * close).quantize(Decimal("1e-8")) for v in (volume, buy))
        close_ms = _ms(day + timedelta(days=1)) - 1
        values = (_ms(day), open_, high, low, close, volume, close_ms, quote, rng.randint(1_000, 5_000_000), buy,
                  buy_quote, 0)  # fmt: skip
        lines.append(",".join(f"{v:.8f}" if isinstance(v, Decimal) else str(v) for v in values))
        symbol_price[0] = close
        day += timedelta(days=1)
    return lines


def write_archives(root: Path, symbols: list[str], months: list[str], seed: int) -> tuple[int, int]:
    """Write the monthly 1d archives with their .CHECKSUM files under ``root``; (files, klines)."""
    from cryptolake.history.binance_archive import kline_archive_path

    rng = random.Random(seed)
    files = klines = 0
    for symbol in symbols:
        price = [Decimal(rng.randint(1, 60_000))]
        for month in months:
            path = root / kline_archive_path("spot", "monthly", symbol, "1d", month)
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = month_lines(price, month, rng)
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
                bundle.writestr(path.name.removesuffix(".zip") + ".csv", "\n".join(lines) + "\n")
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            path.with_name(path.name + ".CHECKSUM").write_text(f"{digest}  {path.name}\n")
            files += 1
            klines += len(lines)
    return files, klines


# --- the steps ---------------------------------------------------------------------------------------------------


def import_archives(root: Path, state_dir: Path) -> tuple[float, str]:
    """``cryptolake import archive --root ROOT`` as a user runs it; (seconds, its last output line)."""
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(state_dir)}
    for key in ("CRYPTOLAKE_PROFILE", "CRYPTOLAKE_CATALOG_URI", "CRYPTOLAKE_WAREHOUSE"):
        env.pop(key, None)
    command = [str(Path(sys.executable).parent / "cryptolake"), "import", "archive", "--root", str(root)]
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"cryptolake import archive failed ({done.returncode}):\n{done.stderr[-4000:]}")
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return seconds, lines[-1] if lines else ""


def step_seconds(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds of each step of a run, STEP_START to its STEP_SUCCESS / STEP_FAILURE in the run's event log."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id, of_type=kinds, limit=10_000).records:
        entry = record.event_log_entry
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started[entry.step_key] = entry.timestamp
        else:
            seconds[entry.step_key] = entry.timestamp - started.get(entry.step_key, entry.timestamp)
    return seconds


#: How a run's steps are grouped in the figures: (label, does the step key belong to it).
STEP_GROUPS = (
    ("Silver trades and bars (Spark starts here)", lambda key: key in ("silver_trades", "silver__ohlcv_1m")),
    ("Silver checks", lambda key: key.startswith("silver__") and "soda" in key),
    ("dbt build over the window (`gold_dbt_models`)", lambda key: key == "gold_dbt_models"),
    ("Gold checks", lambda key: key.startswith("gold__")),
)


def grouped_steps(instance: Any, outcomes: list[Any]) -> list[tuple[str, float]]:
    """(label, seconds) of the runs' steps by group, and what the runs spent outside their steps."""
    totals = dict.fromkeys([label for label, _ in STEP_GROUPS], 0.0)
    in_steps = 0.0
    for outcome in outcomes:
        for key, seconds in step_seconds(instance, outcome.run_id).items():
            label = next((label for label, belongs in STEP_GROUPS if belongs(key)), None)
            if label is not None:
                totals[label] += seconds
            in_steps += seconds
    outside = sum(outcome.seconds for outcome in outcomes) - in_steps
    return [*totals.items(), ("run set-up and bookkeeping outside the steps", outside)]


def gold_rows(catalog: Any) -> dict[str, int]:
    """Rows of every Gold table (what the build wrote)."""
    return {
        ".".join(identifier): catalog.load_table(identifier).scan().to_arrow().num_rows
        for identifier in sorted(catalog.list_tables("gold"))
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cryptolake-history-bench-"))
    state_dir = work / "state"
    # Anything that reads the process settings (get_settings) points at the benchmark's own lakehouse.
    os.environ["CRYPTOLAKE_STATE_DIR"] = str(state_dir)
    os.environ["DAGSTER_HOME"] = str(state_dir / "dagster")
    try:
        return run(args, work, state_dir)
    finally:
        if args.keep_state:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, state_dir: Path) -> int:
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
    from cryptolake.logging import configure_logging
    from cryptolake.settings import Settings
    from cryptolake_dagster.backfill import backfill_instance, run_backfill
    from cryptolake_dagster.definitions import build_definitions
    from cryptolake_dagster.instance import prepare_dagster_home

    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    months = months_of(args.months)
    first = date.fromisoformat(f"{months[0]}-01")
    year, month = map(int, months[-1].split("-"))
    last = date(year, month, calendar.monthrange(year, month)[1])
    days = (last - first).days + 1
    load_before = os.getloadavg()

    root = work / "archive"
    started = time.monotonic()
    files, klines = write_archives(root, symbols, months, args.seed)
    log(f"generated {files} monthly 1d archives ({klines:,} klines, {len(symbols)} symbols, {months[0]} .. "
        f"{months[-1]}) with .CHECKSUM files in {time.monotonic() - started:.1f} s (not timed)")  # fmt: skip

    log(f"cryptolake import archive --root {root} ...")
    import_s, import_line = import_archives(root, state_dir)
    log(f"  imported in {import_s:.1f} s ({import_line.strip()[:160]})")

    settings = Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None)
    configure_logging("WARNING", "console")
    catalog = bootstrap_lakehouse(settings)
    started = time.monotonic()
    defs = build_definitions(settings)  # writes the dbt profile, parses the project
    definitions_s = time.monotonic() - started
    job_assets = len(defs.resolve_job_def("silver_gold_daily").asset_layer.selected_asset_keys)
    log(f"definitions built in {definitions_s:.1f} s (silver_gold_daily: {job_assets} assets)")

    instance = backfill_instance(prepare_dagster_home(settings))
    log(f"ranged build: silver_gold_daily {first} .. {last} ({days} days)")
    started = time.monotonic()
    ranged = run_backfill(
        defs, "silver_gold_daily", str(first), str(last), instance, days_per_run=args.days_per_run, stream=sys.stdout
    )
    ranged_s = time.monotonic() - started
    ok = all(outcome.success for outcome in ranged)
    ranged_steps = grouped_steps(instance, ranged)
    for label, seconds in ranged_steps:
        log(f"  {label}: {seconds:.1f} s")
    rows = gold_rows(catalog)
    log(f"  ranged build {'ok' if ok else 'FAILED'} in {ranged_s:.1f} s, {len(ranged)} run(s); Gold rows: {rows}")

    per_day: list[float] = []
    per_day_dbt: list[float] = []
    if args.per_day_days:
        sample_last = first + timedelta(days=args.per_day_days - 1)
        log(f"previous implementation: one run per day, {first} .. {sample_last}")
        outcomes = run_backfill(
            defs, "silver_gold_daily", str(first), str(sample_last), instance, days_per_run=1, stream=sys.stdout
        )
        ok = ok and all(outcome.success for outcome in outcomes)
        per_day = [outcome.seconds for outcome in outcomes]
        per_day_dbt = [step_seconds(instance, o.run_id).get("gold_dbt_models", 0.0) for o in outcomes]
    instance.dispose()

    total = import_s + definitions_s + ranged_s
    figures = {
        "symbols": symbols, "months": months, "files": files, "klines": klines, "days": days,
        "import_s": import_s, "definitions_s": definitions_s, "ranged_s": ranged_s, "ranged": ranged,
        "per_day": per_day, "per_day_dbt": per_day_dbt, "ranged_steps": ranged_steps, "total_s": total,
        "rows": rows, "assets": job_assets, "ok": ok,
        "load_before": load_before, "load_after": os.getloadavg(), "days_per_run": args.days_per_run,
    }  # fmt: skip
    print()
    print(render_summary(figures))
    if not args.no_docs:
        write_section(args.docs, SECTION_TITLE, render_section(figures))
        log(f"wrote section '{SECTION_TITLE}' of {args.docs}")
    return 0 if ok else 1


# --- the figures -------------------------------------------------------------------------------------------------


def _comparison(f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(implementation, runs, per day, whole range) rows."""
    days = f["days"]
    rows = [
        (
            f"ranged runs ({len(f['ranged'])} run{'s' if len(f['ranged']) != 1 else ''})",
            str(len(f["ranged"])),
            f"{f['ranged_s'] / days:.2f} s",
            f"**{f['ranged_s']:.0f} s** (measured)",
        )
    ]
    if f["per_day"]:
        mean = sum(f["per_day"]) / len(f["per_day"])
        rows.append(
            (
                f"one run per day ({len(f['per_day'])}-day sample)",
                str(days),
                f"{mean:.1f} s",
                f"{mean * days / 3600:.1f} h (extrapolated: {days} x {mean:.1f} s)",
            )
        )
    return rows


def render_summary(f: dict[str, Any]) -> str:
    lines = [
        f"{'step':<44} {'seconds':>9}",
        f"{'import archive (' + str(f['files']) + ' files, ' + format(f['klines'], ',') + ' klines)':<44} "
        f"{f['import_s']:>9.1f}",
        f"{'definitions (dbt parse)':<44} {f['definitions_s']:>9.1f}",
        f"{'ranged build, ' + str(f['days']) + ' days':<44} {f['ranged_s']:>9.1f}",
        f"{'total':<44} {f['total_s']:>9.1f}   target <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if f['total_s'] <= TARGET_SECONDS else 'NOT met'}",
        "",
        f"{'implementation':<44} {'runs':>6} {'per day':>10}  whole range",
    ]
    lines += [f"{name:<44} {runs:>6} {per:>10}  {whole}" for name, runs, per, whole in _comparison(f)]
    return "\n".join(lines)


def render_section(f: dict[str, Any]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = "/".join(f"{x:.1f}" for x in f["load_before"]), "/".join(f"{x:.1f}" for x in f["load_after"])
    runs = "".join(f"| {o.label} | {o.seconds:.1f} | {'ok' if o.success else 'FAILED'} |\n" for o in f["ranged"])
    runs = f"| Ranged run | s | outcome |\n|---|---:|---|\n{runs}\n" if len(f["ranged"]) > 1 else ""
    comparison = "\n".join(f"| {name} | {runs_} | {per} | {whole} |" for name, runs_, per, whole in _comparison(f))
    met = "met" if f["total_s"] <= TARGET_SECONDS else "**not met**"
    steps = "\n".join(f"| {label} | {seconds:.1f} |" for label, seconds in f["ranged_steps"])
    rows = ", ".join(f"{name.removeprefix('gold.')} {count:,}" for name, count in f["rows"].items())
    ranged_dbt = next(seconds for label, seconds in f["ranged_steps"] if "dbt" in label)
    dbt_note = f"{ranged_dbt:.0f} s for all {f['days']} days"
    if f["per_day_dbt"]:
        dbt_note += f", {sum(f['per_day_dbt']) / len(f['per_day_dbt']):.0f} s for one day"
    option = f" --days-per-run {f['days_per_run']}" if f["days_per_run"] else ""
    return f"""## {SECTION_TITLE}

`.venv/bin/python benchmarks/history_backfill_benchmark.py{option}` ({now}; the script rewrites this section).
Load average {load[0]} before, {load[1]} after. Data: {f["files"]} monthly `1d` kline archives (official layout,
`.CHECKSUM` checked) of {len(f["symbols"])} symbols, {f["months"][0]} .. {f["months"][-1]}: {f["klines"]:,} klines.
Imported with `cryptolake import archive --root`, then `silver_gold_daily` ({f["assets"]} assets: Silver, every dbt
model of the project, their checks) for all {f["days"]} days through `cryptolake backfill`'s code.

| Step | s |
|---|---:|
| `cryptolake import archive --root` | {f["import_s"]:.1f} |
| definitions (dbt parse) | {f["definitions_s"]:.1f} |
| ranged build, {f["days"]} days | {f["ranged_s"]:.1f} |
| **import + build** | **{f["total_s"]:.1f}** (target <= {TARGET_SECONDS:.0f} s: {met}) |

{runs}| Implementation | runs | per day | whole range |
|---|---:|---:|---|
{comparison}

| Ranged build, where the time goes | s |
|---|---:|
{steps}

Gold rows after the build: {rows}.
* A ranged run pays its fixed cost once: starting Spark and the run, one dbt invocation over the whole window
  (every model and dbt test of the project: {dbt_note}), the checks' scans. Silver skips the {f["days"]} days
  without trades from Iceberg metadata. What grows with the range is Dagster's record of each asset's
  materialization for each day ({f["assets"]} x {f["days"]} events, written by the backfill's event log in one transaction
  per asset and run, mostly while dbt runs).
* The per-day figure is measured on a warm Spark session (favouring it) and multiplied by the number of days.
* The import reads and verifies each file, then writes them in one pyiceberg commit per 500,000 klines ({f["import_s"] / f["files"]:.2f} s a file here).
"""


if __name__ == "__main__":
    raise SystemExit(main())
