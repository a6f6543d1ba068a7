"""The ``cryptolake`` command: run the platform, bootstrap the lakehouse, show the settings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from cryptolake.logging import configure_logging
from cryptolake.settings import Settings, render_env_example

T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptolake",
        description="CryptoLake: a Dagster-orchestrated Iceberg lakehouse for crypto market data. Settings come "
        "from CRYPTOLAKE_* environment variables or .env (see .env.example).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run the whole platform on this machine (embedded default) until Ctrl-C",
        description="Start the local broker, the exchange simulator (or live Binance with --live), the producer, "
        "the Bronze writer, Dagster (webserver + daemon), the API and the dashboard; print their URLs; stop "
        "them all on Ctrl-C. The Bronze sensor materializes Silver and Gold as trades arrive.",
    )
    run.add_argument("--live", action="store_true", help="stream live Binance trades instead of the simulator")
    run.add_argument(
        "--commit-interval", type=float, default=10.0, help="Bronze commit interval for the demo (default 10 s)"
    )
    backfill = sub.add_parser(
        "backfill",
        help="materialize a range of days of a partitioned job as ranged runs (many days per run), with progress",
        description="Run a partitioned Dagster job (default silver_gold_daily: Silver trades and 1-minute bars, the "
        "dbt Gold models and their Soda checks) over the UTC days --from .. --to, in this process, against the "
        "platform's Dagster instance (<state dir>/dagster): the runs appear in the Dagster UI, tagged "
        "cryptolake/backfill=<id>. The days are ranged runs: one run spans many days (by default the whole range), "
        "Silver rebuilds them day by day inside it (days without data are skipped from Iceberg metadata) and dbt "
        "builds once over the run's range, so years take minutes. A line per run reports its days, the outcome, "
        "the assets materialized, the days done, the share and the ETA, and a ranged run prints a line per "
        "finished step. Exit status 1 when any run failed. For batch sources use --job batch_sources_daily (one "
        "day per run: they fetch per day from HTTP APIs).",
    )
    backfill.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD", help="first day (UTC)")
    backfill.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, inclusive (default: --from)")
    backfill.add_argument("--job", default="silver_gold_daily", help="partitioned job to run (default %(default)s)")
    backfill.add_argument(
        "--days-per-run",
        type=int,
        metavar="N",
        help="most days one run spans (default: as many as the job's assets allow, their backfill policy: the "
        "whole range for silver_gold_daily, 1 for batch_sources_daily). Each run pays a fixed cost (a dbt "
        "invocation, the checks' scans: about a minute), so one run is fastest; a smaller N (e.g. 366 for years "
        "of trade data) gives checkpoints, a progress line per run and a smaller re-run after a failure",
    )
    backfill.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
    backfill.add_argument(
        "--dagster-logs",
        action="store_true",
        help="also print Dagster's event log and the libraries' INFO logs (alembic, Soda scan results)",
    )
    imports = sub.add_parser(
        "import",
        help="import history from files into Bronze (idempotent: a re-import replaces the file's rows)",
        description="Import history files into the lakehouse. A file's rows replace the rows of the same exchange, "
        "symbol and interval in the file's time range, so importing again (or a corrected file) converges.",
    )
    kinds = imports.add_subparsers(dest="kind", required=True)
    csv_import = kinds.add_parser(
        "csv",
        help="daily or hourly OHLCV in CryptoDataDownload's layout -> bronze.ohlcv_csv",
        description="Read CSV files in CryptoDataDownload's layout (a first line of text, a header with date, symbol, "
        "open, high, low, close, 'Volume <base>', 'Volume <quote>' [, tradecount]; dates YYYY-MM-DD, "
        "YYYY-MM-DD HH:MM:SS or YYYY-MM-DD HH-AM; newest first) into bronze.ohlcv_csv. Unreadable rows are "
        "skipped and listed with their line number and reason; the exit status is 1 when a file could not be "
        "imported at all.",
    )
    csv_import.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV files to import")
    csv_import.add_argument("--exchange", required=True, help="exchange the files are of, e.g. bitstamp")
    archive = kinds.add_parser(
        "archive",
        help="Binance public data archives (klines, aggTrades) from a directory or a mirror -> Bronze",
        description="Import Binance archives in the official layout: klines (data/{spot|futures/um}/{daily|monthly}/"
        "klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM[-DD].zip) into bronze.binance_klines and aggTrades "
        "(.../aggTrades/SYMBOL/SYMBOL-aggTrades-YYYY-MM[-DD].zip) into bronze.trades_backfill, with source = "
        "'archive'. Each file is checked against its .CHECKSUM (a mismatch is refused by name); header rows and "
        "microsecond timestamps are detected per file; Binance's invalid aggTrade markers are dropped and counted. "
        "--root imports every archive under a directory; --base-url fetches the monthly files of --symbols x "
        "--intervals (and aggTrades with --agg-trades) for --months from a mirror. Silver picks up imported trades "
        "when the days are (re)built: cryptolake backfill --from ... --to ....",
    )
    where = archive.add_mutually_exclusive_group(required=True)
    where.add_argument("--root", type=Path, help="directory that holds data/ (the layout of data.binance.vision)")
    where.add_argument("--base-url", help="base URL of a mirror of data.binance.vision")
    archive.add_argument("--market", choices=("spot", "usdm_futures"), default="spot", help="with --base-url")
    archive.add_argument("--symbols", default="", help="comma-separated symbols, with --base-url")
    archive.add_argument("--intervals", default="1d", help="comma-separated intervals, with --base-url (1d)")
    archive.add_argument("--months", metavar="YYYY-MM:YYYY-MM", help="first and last month, with --base-url")
    archive.add_argument(
        "--agg-trades", action="store_true", help="with --base-url: also the monthly aggTrades files of --symbols"
    )
    maintain = sub.add_parser(
        "maintain",
        help="table maintenance now: compaction, manifest rewrite, snapshot expiry, orphan-file removal",
        description="Run what the Dagster job table_maintenance runs (daily on CRYPTOLAKE_MAINTENANCE_CRON), in this "
        "process: for every table that exists (or those of --tables), the small files of each partition are "
        "compacted, the manifests rewritten, snapshots older than CRYPTOLAKE_MAINTENANCE_SNAPSHOT_RETENTION_H "
        "expired (keeping the Bronze sensor's cursor and the Bronze writer's Kafka offsets, read from the "
        "platform's Dagster instance and the table) and files no snapshot references, older than "
        "CRYPTOLAKE_MAINTENANCE_ORPHAN_OLDER_THAN_H, deleted. A line per table: files, bytes, snapshots and "
        "manifests before and after. Safe while the platform runs (concurrent commits are retried, not lost).",
    )
    maintain.add_argument("--tables", default="", help="comma-separated namespace.name (default: every table)")
    sub.add_parser("bootstrap", help="create the catalog, the namespaces and the registered tables (idempotent)")
    sub.add_parser("settings", help="print the effective settings as JSON")
    sub.add_parser("env-example", help="print the documented list of every CRYPTOLAKE_* setting (.env.example)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        from cryptolake_platform.supervisor import run_platform

        return run_platform(settings, live=args.live, commit_interval_s=args.commit_interval)
    if args.command == "backfill":
        return _backfill(settings, args)
    if args.command == "import":
        return _import_csv(settings, args) if args.kind == "csv" else _import_archive(settings, args)
    if args.command == "maintain":
        return _maintain(settings, args)
    if args.command == "bootstrap":
        from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse

        bootstrap_lakehouse(settings)
        print(f"lakehouse ready: catalog {settings.resolved_catalog_uri}, warehouse {settings.resolved_warehouse}")
        return 0
    if args.command == "env-example":
        print(render_env_example(), end="")
        return 0
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def _import_each(kind: str, items: Sequence[T], name: Callable[[T], str], work: Callable[[T], str],
                 errors: tuple[type[Exception], ...],
                 finish: Callable[[], tuple[str, int]] | None = None) -> int:  # fmt: skip
    """Run ``work`` on each file with a progress line (what it returned, or why it was refused), then ``finish``
    (the writes left: its line and the files it could not write); exit status."""
    failed = 0
    for number, item in enumerate(items, start=1):
        prefix = f"import {kind} [{number}/{len(items)}] {name(item)}"
        try:
            print(f"{prefix}: {work(item)}")
        except errors as exc:
            failed += 1
            print(f"{prefix}: not imported: {exc}", file=sys.stderr)
    if finish is not None:
        line, unwritten = finish()
        print(f"import {kind}: {line}", file=sys.stderr if unwritten else sys.stdout)
        failed += unwritten
    print(f"import {kind}: {len(items) - failed} of {len(items)} files imported, {failed} refused")
    return 1 if failed else 0


def _import_csv(settings: Settings, args: argparse.Namespace) -> int:
    from cryptolake.history.csv_ohlcv import CsvImportError, read_csv, write_import
    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse

    catalog = bootstrap_lakehouse(settings)

    def work(path: Path) -> str:
        parsed = read_csv(path, args.exchange.lower())
        written = write_import(catalog, parsed)
        first, last = parsed.rows[0]["open_time"], parsed.rows[-1]["open_time"]
        refused = ", ".join(f"{reason} x{count}" for reason, count in sorted(parsed.reasons.items()))
        lines = [f"  line {line}: {reason}" if line else f"  {reason}" for line, reason in parsed.rejected[:10]]
        return "\n".join([
            f"{written} {parsed.interval} bars of {parsed.exchange} {parsed.symbol}, {first:%Y-%m-%d %H:%M} .. "
            f"{last:%Y-%m-%d %H:%M} UTC; {len(parsed.rejected)} rows refused" + (f" ({refused})" if refused else ""),
            *lines,
        ])  # fmt: skip

    return _import_each("csv", args.files, lambda path: path.name, work, (CsvImportError, OSError))


def _months(spec: str) -> list[str]:
    first, _, last = spec.partition(":")
    year, month = map(int, first.split("-"))
    end = tuple(map(int, (last or first).split("-")))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _import_archive(settings: Settings, args: argparse.Namespace) -> int:
    from cryptolake.history.binance_agg_trades import import_agg_trades_archive
    from cryptolake.history.binance_archive import (
        Archive,
        ArchiveError,
        KlineImport,
        agg_trades_archive_path,
        find_archives,
        kline_archive_path,
        mirror_archives,
    )
    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse

    if args.root is not None:
        if not args.root.is_dir():
            print(f"cryptolake import archive: --root {args.root} is not a directory", file=sys.stderr)
            return 2
        archives = find_archives(args.root)
    else:
        symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        if not symbols or not args.months:
            print("cryptolake import archive: --base-url needs --symbols and --months", file=sys.stderr)
            return 2
        months = _months(args.months)
        paths = [
            kline_archive_path(args.market, "monthly", symbol, interval.strip(), month)
            for symbol in symbols
            for interval in args.intervals.split(",")
            if interval.strip()
            for month in months
        ]
        if args.agg_trades:
            paths += [agg_trades_archive_path(args.market, "monthly", s, month) for s in symbols for month in months]
        archives = mirror_archives(args.base_url, paths)
    if not archives:
        print("cryptolake import archive: no kline or aggTrades archive found in the official layout", file=sys.stderr)
        return 1
    catalog = bootstrap_lakehouse(settings)
    klines = KlineImport(catalog)  # files read one by one, written together (one commit per 500,000 rows)
    written = {"files": 0, "rows": 0}

    def write_pending() -> None:
        files, rows = klines.flush()
        written["files"] += files
        written["rows"] += rows

    def work(item: Archive) -> str:
        if item.kind == "klines":
            count, checked = klines.add(item)
            return f"{count} {item.market} {item.interval} klines ({'checksum ok' if checked else 'no checksum'})"
        write_pending()  # the klines read so far land before an aggTrades file's own commit
        parsed, checked = import_agg_trades_archive(catalog, item, settings.coin_ids)
        rejected = ", ".join(f"{reason} x{count}" for reason, count in sorted(parsed.rejected.items()))
        lines = [f"  line {line}: {reason}" for line, reason in parsed.first_rejects]
        return "\n".join([
            f"{len(parsed.trades)} {item.market} aggTrades ({'checksum ok' if checked else 'no checksum'}); "
            f"{parsed.invalid_markers} invalid-trade markers dropped; {sum(parsed.rejected.values())} rows refused"
            + (f" ({rejected})" if rejected else ""),
            *lines,
        ])  # fmt: skip

    def finish() -> tuple[str, int]:
        pending = klines.pending_files
        try:
            write_pending()
        except (ArchiveError, OSError) as exc:
            return f"the last {pending} kline file(s) read could not be written: {exc}", pending
        return f"{written['rows']} klines of {written['files']} files written to bronze.binance_klines", 0

    # requests' errors are OSErrors
    return _import_each("archive", archives, lambda item: item.origin, work, (ArchiveError, OSError), finish)


def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    from cryptolake.lakehouse.maintenance import maintain_tables
    from cryptolake.lakehouse.spark import build_spark_session
    from cryptolake.tables import ALL_TABLE_IDENTIFIERS, BRONZE_TRADES

    tables = [name.strip() for name in args.tables.split(",") if name.strip()]
    unknown = sorted(set(tables) - set(ALL_TABLE_IDENTIFIERS))
    if unknown:
        print(f"cryptolake maintain: unknown tables {', '.join(unknown)}", file=sys.stderr)
        return 2
    keep = {BRONZE_TRADES.identifier: _bronze_sensor_cursor(settings)}
    spark = build_spark_session(settings, "cryptolake-maintain")
    try:
        results = maintain_tables(spark, settings, identifiers=tables or None, keep_snapshot_ids=keep)
    finally:
        spark.stop()
    for r in results:
        b, a = r.before, r.after
        print(
            f"maintain {r.table}: files {b.data_files} -> {a.data_files}, bytes {b.data_bytes:,} -> "
            f"{a.data_bytes:,}, snapshots {b.snapshots} -> {a.snapshots}, manifests {b.manifests} -> "
            f"{a.manifests}, {r.orphan_files_removed} orphan files removed ({r.seconds:.1f} s)"
        )
    print(f"maintain: {len(results)} tables")
    return 0


def _bronze_sensor_cursor(settings: Settings) -> list[int]:
    """The Bronze sensor's cursor in the platform's Dagster instance (none when it was never started)."""
    if not (settings.dagster_home / "dagster.yaml").is_file():
        return []
    import dagster as dg

    from cryptolake_dagster.defs.maintenance.jobs import sensor_cursor_snapshots

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        return sensor_cursor_snapshots(instance)
    finally:
        instance.dispose()


def _backfill(settings: Settings, args: argparse.Namespace) -> int:
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)  # our own Definitions' use of beta parameters
    # Jobs mixing ranged and per-day assets run one day per run; the backfill says so itself (its first line).
    warnings.filterwarnings("ignore", message="Asset job .* materializes assets with varying BackfillPolicies")
    from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
    from cryptolake_dagster.backfill import BackfillError, backfill_instance, run_backfill
    from cryptolake_dagster.definitions import build_definitions
    from cryptolake_dagster.instance import prepare_dagster_home

    if not args.dagster_logs:  # the progress lines are the output; libraries' INFO chatter (alembic, Soda) is not
        logging.getLogger().setLevel(logging.WARNING)
    bootstrap_lakehouse(settings)
    instance = backfill_instance(prepare_dagster_home(settings))
    try:
        outcomes = run_backfill(
            build_definitions(settings),
            args.job,
            args.start,
            args.end or args.start,
            instance,
            days_per_run=args.days_per_run,
            fail_fast=args.fail_fast,
            dagster_logs=args.dagster_logs,
        )
    except BackfillError as exc:
        print(f"cryptolake backfill: {exc}", file=sys.stderr)
        return 2
    finally:
        instance.dispose()
    return 0 if all(outcome.success for outcome in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
