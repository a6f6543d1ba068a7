"""bronze/trades_backfill: the aggregate ids the day's incomplete minutes are missing, fetched over REST.

The asset reads the day's incomplete minutes from ``gold.fct_completeness_1m`` (built by the previous run of the
day; it is not declared as an input, which would make a cycle: the repair feeds Silver, which feeds that model) and
repairs them with :mod:`cryptolake.repair`. The ``repair_day`` job runs it and everything downstream — Silver
trades and bars, the dbt Gold models (completeness included) and their checks — so one run repairs the day and
checks it again.
"""

from datetime import timedelta

import dagster as dg
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from cryptolake.connectors.binance.rest import GapRepairError
from cryptolake.repair import SeriesRepair, missing_id_ranges, repair_series
from cryptolake.tables import BRONZE_TRADES_BACKFILL, GOLD_COMPLETENESS_1M
from cryptolake_dagster.defs.repair.resources import BinanceTradesRestResource
from cryptolake_dagster.resources import IcebergCatalogResource
from cryptolake_dagster.table_assets import daily_table_asset_kwargs

BACKFILL_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=7))


@dg.asset(
    **daily_table_asset_kwargs(
        BRONZE_TRADES_BACKFILL,
        "bronze",
        freshness=BACKFILL_FRESHNESS,
        kinds=("binance", "iceberg"),
        metadata={"written by": "this asset (source = rest_backfill), and cryptolake import archive (archive)"},
    ),
)
def bronze_trades_backfill(
    context: dg.AssetExecutionContext, iceberg: IcebergCatalogResource, binance_trades_rest: BinanceTradesRestResource
) -> dg.MaterializeResult:
    """Fetch over REST the aggregate ids missing from the partition's incomplete minutes (per the completeness
    model) into bronze.trades_backfill; idempotent. Nothing to do when the day is complete or not checked yet."""
    start, end = context.partition_time_window
    catalog = iceberg.catalog()
    try:
        completeness = catalog.load_table(GOLD_COMPLETENESS_1M)
    except NoSuchTableError:
        context.log.warning(f"{GOLD_COMPLETENESS_1M} does not exist yet: build the day first (silver_gold_daily)")
        rows = []
    else:
        window = And(GreaterThanOrEqual("minute", start.isoformat()), LessThan("minute", end.isoformat()))
        rows = completeness.scan(row_filter=And(window, EqualTo("complete", False))).to_arrow().to_pylist()
    ranges = missing_id_ranges(rows)
    repairs, failed = [], []
    for (market, symbol), series_ranges in ranges.items():
        repair = SeriesRepair(market, symbol, series_ranges)
        ids = sum(hi - lo + 1 for lo, hi in series_ranges)
        if ids > binance_trades_rest.max_ids:
            failed.append(
                f"{market} {symbol}: {ids} aggregate ids missing, more than the {binance_trades_rest.max_ids} a REST "
                "repair fetches (CRYPTOLAKE_PRODUCER_MAX_GAP_REPAIR): import the day's aggTrades archive instead"
            )
            continue
        context.log.info(f"{market} {symbol}: fetching {ids} aggregate ids in {len(series_ranges)} ranges over REST")
        try:
            repair_series(
                catalog,
                binance_trades_rest.client(market),
                repair,
                binance_trades_rest.coin_ids,
                {"dagster.run-id": context.run.run_id},
            )
        except GapRepairError as exc:  # the other series are still repaired; this run fails at the end
            failed.append(f"{market} {symbol}: {exc}")
            context.log.error(f"{market} {symbol}: not repaired: {exc}")
            continue
        context.log.info(f"{market} {symbol}: {repair.written} trades written, rejected {dict(repair.rejected)}")
        repairs.append(repair)
    incomplete = len(rows)
    context.log.info(
        f"{incomplete} incomplete minutes in [{start}, {end}); {len(ranges)} series repaired"
        if incomplete
        else f"no incomplete minute in [{start}, {end}) (or the day was not checked yet): nothing to fetch"
    )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} series could not be repaired over REST ({len(repairs)} were): "
            + "; ".join(failed)
            + f". Check that {binance_trades_rest.spot_base_url} / {binance_trades_rest.futures_base_url} answer "
            "aggTrades (or import the day's aggTrades archive) and run repair_day for the day again.",
        )
    return dg.MaterializeResult(
        metadata={
            "incomplete_minutes": dg.MetadataValue.int(incomplete),
            "series_repaired": dg.MetadataValue.int(len(repairs)),
            "trades_written": dg.MetadataValue.int(sum(r.written for r in repairs)),
            "ranges": dg.MetadataValue.json(
                {f"{r.market}:{r.symbol}": [list(span) for span in r.ranges] for r in repairs}
            ),
            "rejected": dg.MetadataValue.json({f"{r.market}:{r.symbol}": dict(r.rejected) for r in repairs}),
        }
    )
