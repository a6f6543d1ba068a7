"""Binance aggTrades archives -> ``bronze.trades_backfill`` (``source = 'archive'``), through the live trades' checks.

A row of an aggTrades CSV is ``agg_trade_id, price, quantity, first_trade_id, last_trade_id, transact_time,
is_buyer_maker[, is_best_match]`` (spot has the last column and no header; USD-M files have a header since 2022).
Each row is made a REST-style ``aggTrade`` item and normalized by the Binance connector
(``cryptolake.connectors.binance``), so an archived trade is exactly the Trade the live stream gives for the same
aggregate id. Binance's invalid-trade markers (``p = 0, q = 0, f = -1, l = -1``) are dropped and counted; a row the
contract rejects is skipped and counted by reason. The file's rows replace the rows of its origin (its layout path),
so importing again, or a replaced file, converges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo

from cryptolake.connectors.binance import normalize_binance_agg_trade
from cryptolake.contract import TRADE_FIELDS, ContractError, Trade
from cryptolake.history.binance_archive import (
    Archive,
    ArchiveError,
    _csv_rows,
    _to_ms,
    verified_bytes,
)
from cryptolake.lakehouse.writes import replace_rows
from cryptolake.tables import BRONZE_TRADES_BACKFILL

#: Binance's marker of an invalid aggregate trade in the archives: price 0, quantity 0, trade ids -1.
INVALID_MARKER = ("0", "0", "-1", "-1")


@dataclass
class AggTradesFile:
    """One file's trades and what was left out of it."""

    trades: list[Trade]
    invalid_markers: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    first_rejects: list[tuple[int, str]] = field(default_factory=list)  # (line, reason: detail), the first 10


def _is_zero(text: str) -> bool:
    try:
        return float(text) == 0.0
    except ValueError:
        return False


def read_agg_trades_archive(
    archive: Archive, content: bytes, coin_ids: Mapping[str, str], landed_at: datetime
) -> AggTradesFile:
    """The file's trades (header row skipped, microseconds made milliseconds), normalized by the Binance connector."""
    parsed = AggTradesFile([])
    start, end = archive.period_window()
    for number, row in enumerate(_csv_rows(archive, content), start=1):
        if number == 1 and not row[0].strip().lstrip("-").isdigit():  # a header row (USD-M files since 2022)
            continue
        if len(row) < 7:
            raise ArchiveError(
                f"{archive.name}, line {number}: not an aggTrades row ({len(row)} columns, expected 7 or 8)"
            )
        agg_id, price, quantity, first, last, time, maker = (cell.strip() for cell in row[:7])
        if first == INVALID_MARKER[2] and last == INVALID_MARKER[3] and _is_zero(price) and _is_zero(quantity):
            parsed.invalid_markers += 1
            continue
        item: dict[str, Any] = {"s": archive.symbol, "p": price, "q": quantity, "m": maker.lower() == "true"}
        try:
            item.update(a=int(agg_id), f=int(first), l=int(last), T=int(_to_ms(time)))
            if maker.lower() not in ("true", "false"):
                raise ContractError("invalid_type", f"is_buyer_maker {maker!r} is not True or False")
            trade = normalize_binance_agg_trade(
                item,
                market=archive.market,
                source="archive",
                coin_ids=dict(coin_ids),
                ingest_time=landed_at,  # type: ignore[arg-type]
            )
            if not start <= trade.trade_time < end:
                raise ContractError(
                    "outside_file_period", f"{trade.trade_time:%Y-%m-%d %H:%M:%S} is not in {archive.period}"
                )
        except (ContractError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, ContractError) else "not_a_number"
            parsed.rejected[reason] += 1
            if len(parsed.first_rejects) < 10:
                parsed.first_rejects.append((number, f"{reason}: {getattr(exc, 'detail', exc)}"))
            continue
        parsed.trades.append(trade)
    return parsed


def trades_table(trades: list[Trade], origin: str, landed_at: datetime, schema: pa.Schema) -> pa.Table:
    """``bronze.trades_backfill`` rows: the trades' contract fields, their origin and the landing time."""
    columns: dict[str, list[Any]] = {f.name: [getattr(trade, f.name) for trade in trades] for f in TRADE_FIELDS}
    columns["origin"] = [origin] * len(trades)
    columns["landed_at"] = [landed_at] * len(trades)
    return pa.Table.from_pydict(columns, schema=schema)


def write_agg_trades(catalog: Catalog, archive: Archive, parsed: AggTradesFile, landed_at: datetime,
                     snapshot_properties: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Replace the rows of the file's origin in bronze.trades_backfill by its trades; the number written."""
    table = catalog.load_table(BRONZE_TRADES_BACKFILL.identifier)
    frame = trades_table(parsed.trades, archive.origin, landed_at, table.schema().as_arrow())
    replace_rows(
        table,
        frame,
        EqualTo("origin", archive.origin),
        {**(snapshot_properties or {}), "cryptolake.archive-file": archive.name},
    )
    return frame.num_rows


def import_agg_trades_archive(catalog: Catalog, archive: Archive, coin_ids: Mapping[str, str],
                              snapshot_properties: Mapping[str, str] | None = None) -> tuple[AggTradesFile, bool]:  # fmt: skip
    """Verify, read and write one aggTrades file; return what was read and whether a checksum was checked."""
    content, checked = verified_bytes(archive)
    landed_at = datetime.now(UTC)
    parsed = read_agg_trades_archive(archive, content, coin_ids, landed_at)
    write_agg_trades(catalog, archive, parsed, landed_at, snapshot_properties)
    return parsed, checked
