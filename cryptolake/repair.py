"""Repair of incomplete minutes: the aggregate ids missing from a day, fetched over REST into bronze.trades_backfill.

The completeness model (``gold.fct_completeness_1m``) charges a hole in the aggregate ids to the minute after it:
such a minute is missing the ids from just after the previous bar's last id to its own last id, less the ones it
holds. Those ranges are fetched with the Binance connector's REST client (``aggTrades?fromId=``), normalized with
the live trades' checks (``source = 'rest_backfill'``) and written to ``bronze.trades_backfill`` under the origin
``rest_backfill/<market>/<symbol>``, replacing that origin's rows in the fetched ranges: a repair run again writes
the same rows. Silver then deduplicates them with the trades already held, and the day's bars are rebuilt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThanOrEqual, Or

from cryptolake.connectors.binance import normalize_binance_agg_trade
from cryptolake.connectors.binance.rest import AggTradesClient
from cryptolake.contract import ContractError, Trade
from cryptolake.history.binance_agg_trades import trades_table
from cryptolake.lakehouse.writes import replace_rows
from cryptolake.tables import BRONZE_TRADES_BACKFILL

Series = tuple[str, str]  # (market, symbol)


@dataclass
class SeriesRepair:
    """What the repair of one market and symbol fetched and wrote."""

    market: str
    symbol: str
    ranges: list[tuple[int, int]]
    fetched: int = 0
    written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def origin(self) -> str:
        return rest_backfill_origin(self.market, self.symbol)


def rest_backfill_origin(market: str, symbol: str) -> str:
    """The ``origin`` of the rows the repair writes for one market and symbol."""
    return f"rest_backfill/{market}/{symbol}"


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive id ranges sorted, overlapping or adjacent ones merged."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def missing_id_ranges(minutes: Iterable[Mapping[str, Any]]) -> dict[Series, list[tuple[int, int]]]:
    """The aggregate-id ranges to fetch for the incomplete minutes of ``gold.fct_completeness_1m`` rows: from just
    after the previous bar's last id (or the minute's first id) to the minute's last id. Minutes without a bar, or
    incomplete for another reason only (a kline that differs while no id is missing), give no range: their ids
    show as a hole in the next bar that has trades."""
    ranges: dict[Series, list[tuple[int, int]]] = {}
    for row in minutes:
        if row["complete"] or not row["has_bar"] or not row["agg_trades_missing"]:
            continue
        previous = row["previous_last_agg_trade_id"]
        lo = previous + 1 if previous is not None else row["first_agg_trade_id"]
        ranges.setdefault((row["market"], row["symbol"]), []).append((lo, row["last_agg_trade_id"]))
    return {series: merge_ranges(found) for series, found in sorted(ranges.items())}


def fetch_trades(
    client: AggTradesClient, repair: SeriesRepair, coin_ids: Mapping[str, str], landed_at: datetime
) -> list[Trade]:
    """The trades of ``repair.ranges`` from REST, normalized (``source = 'rest_backfill'``); rejects counted."""
    trades = []
    for lo, hi in repair.ranges:
        for item in client.trades(repair.symbol, lo, hi):
            repair.fetched += 1
            try:
                trades.append(
                    normalize_binance_agg_trade(
                        item, market=repair.market, source="rest_backfill", coin_ids=dict(coin_ids),  # type: ignore[arg-type]
                        ingest_time=landed_at,
                    )
                )  # fmt: skip
            except ContractError as exc:
                repair.rejected[exc.reason] += 1
    return trades


def _ranges_filter(origin: str, ranges: list[tuple[int, int]]) -> BooleanExpression:
    within: BooleanExpression | None = None
    for lo, hi in ranges:
        one = And(GreaterThanOrEqual("agg_trade_id", lo), LessThanOrEqual("agg_trade_id", hi))
        within = one if within is None else Or(within, one)
    assert within is not None
    return And(EqualTo("origin", origin), within)


def write_repair(catalog: Catalog, repair: SeriesRepair, trades: list[Trade], landed_at: datetime,
                 snapshot_properties: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Replace the origin's rows in the repaired ranges by ``trades`` (one commit); the number written."""
    table = catalog.load_table(BRONZE_TRADES_BACKFILL.identifier)
    frame = trades_table(trades, repair.origin, landed_at, table.schema().as_arrow())
    replace_rows(table, frame, _ranges_filter(repair.origin, repair.ranges), dict(snapshot_properties or {}))
    repair.written = frame.num_rows
    return frame.num_rows


def repair_series(catalog: Catalog, client: AggTradesClient, repair: SeriesRepair, coin_ids: Mapping[str, str],
                  snapshot_properties: Mapping[str, str] | None = None) -> SeriesRepair:  # fmt: skip
    """Fetch and write the missing ids of one market and symbol."""
    landed_at = datetime.now(UTC)
    trades = fetch_trades(client, repair, coin_ids, landed_at)
    write_repair(catalog, repair, trades, landed_at, snapshot_properties)
    return repair
