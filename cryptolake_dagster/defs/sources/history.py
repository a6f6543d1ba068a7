"""History tables from file archives: Binance's public kline archives as a monthly-partitioned asset, and the CSV
table of ``cryptolake import csv`` as a spec.

* ``bronze/binance_klines_archive``: one calendar month (UTC) per partition. For every configured market, symbol
  and interval, the month's monthly file, or when there is none (the current month, which Binance publishes day by
  day) the daily files published so far, from a local copy or a mirror (:class:`BinanceArchiveResource`). The
  files go through the importer of ``cryptolake import archive`` (:func:`import_kline_archive`): each is checked
  against its ``.CHECKSUM`` and replaces the ``source = 'archive'`` rows of ``bronze.binance_klines`` in the day
  or month it covers, so a re-run converges and the REST klines (``source = 'rest'``, ``bronze/binance_klines``)
  are never touched. One asset per writer: the table is ``bronze.binance_klines``, this asset owns its archive
  rows. A file the source does not have is reported in the metadata, not fatal; a file that is refused (checksum
  mismatch, unreadable) fails the run by name, after the month's other files are imported.
* ``bronze/agg_trades_archive``: one UTC day per partition. For every configured market and symbol, the day's
  daily aggTrades file, through the importer of ``cryptolake import archive`` (:func:`import_agg_trades_archive`)
  into ``bronze.trades_backfill`` (``source = 'archive'``; the file's rows replace the rows of its origin). The
  ``binance_agg_trades_daily`` job runs it with everything downstream, so Silver deduplicates the imported trades
  with the live ones and the day's bars and Gold tables are rebuilt in the same run. Missing and refused files
  are handled as for the klines.
* ``bronze/ohlcv_csv``: a spec. CryptoDataDownload's files are one-off downloads without a place in a calendar
  (one file spans years and is re-downloaded whole), and their rows do not name the exchange the importer needs
  (only the file's name does, by the site's habit): ``cryptolake import csv --exchange NAME FILE...`` is where a
  person says which exchange a file is from.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg

from cryptolake.history.binance_agg_trades import import_agg_trades_archive
from cryptolake.history.binance_archive import ArchiveError, import_kline_archive
from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.logging import get_logger
from cryptolake.tables import BRONZE_BINANCE_KLINES, BRONZE_OHLCV_CSV, BRONZE_TRADES_BACKFILL
from cryptolake_dagster.asset_keys import BRONZE_AGG_TRADES_ARCHIVE_KEY, table_key
from cryptolake_dagster.defs.sources.resources import BinanceArchiveResource
from cryptolake_dagster.partitions import daily_partitions
from cryptolake_dagster.resources import IcebergCatalogResource
from cryptolake_dagster.run_snapshots import run_snapshot_properties, snapshot_id

log = get_logger(__name__)

ARCHIVE_START_MONTH = "2017-08"  # the first month of Binance's spot kline archives
BRONZE_BINANCE_KLINES_ARCHIVE_KEY = dg.AssetKey([BRONZE_BINANCE_KLINES.namespace, "binance_klines_archive"])

archive_months = dg.MonthlyPartitionsDefinition(
    start_date=ARCHIVE_START_MONTH, fmt="%Y-%m", timezone="UTC", end_offset=1
)
"""Calendar months, ``YYYY-MM`` (the archives' own unit), up to the current month."""

bronze_ohlcv_csv = dg.AssetSpec(
    key=table_key(BRONZE_OHLCV_CSV),
    description=BRONZE_OHLCV_CSV.description + " Written by `cryptolake import csv`.",
    group_name="bronze",
    kinds={"csv", "iceberg"},
    metadata={"table": BRONZE_OHLCV_CSV.identifier, "writer": "cryptolake import csv"},
)


def _names(items: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"* `{item}`" for item in items) if items else "none")


@dg.asset(
    key=BRONZE_BINANCE_KLINES_ARCHIVE_KEY,
    description="Binance public kline archives (data.binance.vision layout) of the partition's month into "
    f"{BRONZE_BINANCE_KLINES.identifier}, the rows with source = 'archive'; also `cryptolake import archive`.",
    group_name="bronze",
    kinds={"python", "iceberg"},
    partitions_def=archive_months,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
    metadata={
        "table": BRONZE_BINANCE_KLINES.identifier,
        "rows_owned": "source = 'archive'",
        "writers": "this asset, cryptolake import archive",
    },
)
def bronze_binance_klines_archive(
    context: dg.AssetExecutionContext, binance_archive: BinanceArchiveResource, iceberg: IcebergCatalogResource
) -> Iterator[dg.AssetObservation | dg.MaterializeResult]:
    """The month's archive files of every configured market, symbol and interval, imported one by one."""
    month = context.partition_key  # YYYY-MM; one month per run (the backfill policy)
    try:
        source = binance_archive.source()
    except ValueError as exc:  # the configuration: retrying would not help
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    catalog = bootstrap_lakehouse(iceberg.lakehouse.settings())
    properties = run_snapshot_properties(context.run.run_id)
    today = datetime.now(UTC).date()
    imported: list[str] = []
    refused: list[str] = []  # the file is bad: fixing it takes a person
    failed: list[str] = []  # the file could not be fetched (the mirror's errors): a retry may do
    missing: list[str] = []
    rows = checked = daily = 0
    for market in binance_archive.markets:
        for symbol in binance_archive.symbols:
            for interval in binance_archive.intervals:
                files = binance_archive.month_files(market, symbol, interval, month, today)
                missing += files.missing
                for archive in files.archives:
                    try:
                        written, verified = import_kline_archive(catalog, archive, properties)
                    except ArchiveError as exc:
                        refused.append(str(exc))
                        log.warning("archive_refused", file=archive.name, reason=str(exc))
                        continue
                    except OSError as exc:  # requests' errors are OSErrors
                        failed.append(f"{archive.name}: {exc}")
                        log.warning("archive_not_fetched", file=archive.name, reason=str(exc))
                        continue
                    rows += written
                    checked += verified
                    daily += archive.frequency == "daily"
                    imported.append(f"{archive.name}: {written} klines")
                    log.info("archive_imported", file=archive.name, rows=written, checksum_checked=verified)
    if missing:
        context.log.warning(f"{len(missing)} archive file(s) not at {source}: {missing[:10]}")
    metadata = {
        "source": dg.MetadataValue.text(source),
        "files_imported": dg.MetadataValue.int(len(imported)),
        "daily_files": dg.MetadataValue.int(daily),
        "rows": dg.MetadataValue.int(rows),
        "checksums_checked": dg.MetadataValue.int(checked),
        "files_without_checksum": dg.MetadataValue.int(len(imported) - checked),
        "files": _names(imported),
        "files_missing": dg.MetadataValue.int(len(missing)),
        "missing": _names(missing),
        "files_refused": dg.MetadataValue.int(len(refused)),
        "refused": _names(refused),
        "files_not_fetched": dg.MetadataValue.int(len(failed)),
        "not_fetched": _names(failed),
        "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(catalog, BRONZE_BINANCE_KLINES, context.run.run_id)),
    }
    if refused or failed:
        # The files imported are in the table: record what was done before failing on the rest.
        yield dg.AssetObservation(asset_key=context.asset_key, partition=month, metadata=metadata)
        problems = [f"refused {item}" for item in refused] + [f"not fetched {item}" for item in failed]
        advice = (
            "replace the refused files with good copies (and their .CHECKSUM) and materialize the month again"
            if refused
            else f"check that {source} answers and materialize the month again"
        )
        raise dg.Failure(
            description=f"{len(problems)} Binance archive file(s) not imported ({len(imported)} imported): "
            + "; ".join(problems)
            + f". To import them: {advice}.",
            metadata=metadata,
            allow_retries=not refused,
        )
    yield dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=BRONZE_AGG_TRADES_ARCHIVE_KEY,
    description="Binance public aggTrades archives (data.binance.vision layout) of the partition's day into "
    f"{BRONZE_TRADES_BACKFILL.identifier}, the rows with source = 'archive'; also `cryptolake import archive`.",
    group_name="bronze",
    kinds={"python", "iceberg"},
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(1),
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
    metadata={
        "table": BRONZE_TRADES_BACKFILL.identifier,
        "rows_owned": "source = 'archive'",
        "writers": "this asset, cryptolake import archive",
    },
)
def bronze_agg_trades_archive(
    context: dg.AssetExecutionContext, binance_archive: BinanceArchiveResource, iceberg: IcebergCatalogResource
) -> Iterator[dg.AssetObservation | dg.MaterializeResult]:
    """The day's daily aggTrades file of every configured market and symbol, imported one by one."""
    try:
        source = binance_archive.source()
    except ValueError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    day = context.partition_time_window.start.date()
    catalog = bootstrap_lakehouse(iceberg.lakehouse.settings())
    properties = run_snapshot_properties(context.run.run_id)
    imported: list[str] = []
    refused: list[str] = []
    failed: list[str] = []
    missing: list[str] = []
    trades = markers = rejected = 0
    for market in binance_archive.markets:
        for symbol in binance_archive.symbols:
            archive, relative = binance_archive.day_agg_trades(market, symbol, day)
            if archive is None:
                missing.append(relative)
                continue
            try:
                parsed, _ = import_agg_trades_archive(catalog, archive, binance_archive.coin_ids, properties)
            except ArchiveError as exc:
                refused.append(str(exc))
                continue
            except OSError as exc:
                failed.append(f"{archive.name}: {exc}")
                continue
            trades += len(parsed.trades)
            markers += parsed.invalid_markers
            rejected += sum(parsed.rejected.values())
            imported.append(
                f"{archive.origin}: {len(parsed.trades)} trades, {parsed.invalid_markers} invalid markers dropped, "
                f"{sum(parsed.rejected.values())} rows refused {dict(parsed.rejected) or ''}".rstrip()
            )
            log.info("agg_trades_archive_imported", file=archive.origin, trades=len(parsed.trades))
    if missing:
        context.log.warning(f"{len(missing)} aggTrades file(s) not at {source}: {missing[:10]}")
    metadata = {
        "source": dg.MetadataValue.text(source),
        "files_imported": dg.MetadataValue.int(len(imported)),
        "trades": dg.MetadataValue.int(trades),
        "invalid_markers_dropped": dg.MetadataValue.int(markers),
        "rows_refused": dg.MetadataValue.int(rejected),
        "files": _names(imported),
        "missing": _names(missing),
        "refused": _names(refused),
        "not_fetched": _names(failed),
        "iceberg_snapshot_id": dg.MetadataValue.text(snapshot_id(catalog, BRONZE_TRADES_BACKFILL, context.run.run_id)),
    }
    if refused or failed:
        yield dg.AssetObservation(asset_key=context.asset_key, partition=context.partition_key, metadata=metadata)
        problems = [f"refused {item}" for item in refused] + [f"not fetched {item}" for item in failed]
        raise dg.Failure(
            description=f"{len(problems)} aggTrades archive file(s) not imported ({len(imported)} imported): "
            + "; ".join(problems)
            + ". Replace refused files with good copies (and their .CHECKSUM), check the source answers, and "
            "materialize the day again.",
            metadata=metadata,
            allow_retries=not refused,
        )
    yield dg.MaterializeResult(metadata=metadata)
