"""Pushed-down pyiceberg reads behind the API: OHLCV bars for one symbol and time range, and the symbol list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table as IcebergTable
from pyiceberg.types import TimestampType

from cryptolake.tables import GOLD_OHLCV_1H, SILVER_OHLCV_1M
from cryptolake.utc import as_utc

Interval = Literal["1m", "1h"]

# Columns every bar table has, plus the Silver-only ones the API returns when present.
BAR_COLUMNS: Final = (
    "exchange", "market", "open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap",
)  # fmt: skip
OPTIONAL_BAR_COLUMNS: Final = ("buy_volume", "sell_volume")


@dataclass(frozen=True)
class BarSource:
    """Where bars of one interval live: the table and its bar-start timestamp column."""

    identifier: str
    time_column: str


BAR_SOURCES: Final[dict[str, BarSource]] = {
    "1m": BarSource(SILVER_OHLCV_1M.identifier, "minute"),
    "1h": BarSource(GOLD_OHLCV_1H, "hour"),
}


class TableMissingError(LookupError):
    """The table does not exist yet (the pipeline has not built it)."""

    def __init__(self, identifier: str) -> None:
        super().__init__(identifier)
        self.identifier = identifier


def load_table(catalog: Catalog, identifier: str) -> IcebergTable:
    try:
        return catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError) as exc:
        raise TableMissingError(identifier) from exc


def _time_literal(table: IcebergTable, column: str, moment: datetime) -> str:
    """ISO-8601 literal for a filter on ``column``: with ``+00:00`` for timestamptz, naive UTC for timestamp."""
    utc = as_utc(moment)
    if isinstance(table.schema().find_field(column).field_type, TimestampType):
        return utc.replace(tzinfo=None).isoformat(timespec="microseconds")
    return utc.isoformat(timespec="microseconds")


def read_bars(
    catalog: Catalog,
    source: BarSource,
    *,
    symbol: str,
    market: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """Bars of ``symbol`` in ``market`` with bar start in [start, end), oldest first, at most ``limit``.

    Each row is a dict with ``time`` (aware UTC datetime), exact ``Decimal`` prices and volumes and the other
    bar columns. The symbol, market and time predicates are pushed down to the Iceberg scan.
    """
    table = load_table(catalog, source.identifier)
    names = set(table.schema().column_names)
    columns = [source.time_column, *BAR_COLUMNS, *(c for c in OPTIONAL_BAR_COLUMNS if c in names)]
    row_filter: BooleanExpression = And(
        EqualTo("symbol", symbol),
        EqualTo("market", market),
        GreaterThanOrEqual(source.time_column, _time_literal(table, source.time_column, start)),
        LessThan(source.time_column, _time_literal(table, source.time_column, end)),
    )
    arrow: pa.Table = table.scan(row_filter=row_filter, selected_fields=tuple(columns)).to_arrow()
    arrow = arrow.sort_by([(source.time_column, "ascending"), ("exchange", "ascending")]).slice(0, limit)
    rows = arrow.to_pylist()
    for row in rows:
        moment = row.pop(source.time_column)
        row["time"] = as_utc(moment)
    return rows


def read_symbols(catalog: Catalog, market: str | None = None) -> list[str]:
    """Distinct symbols with 1-minute bars (optionally in one market), sorted. Scans only the needed columns."""
    table = load_table(catalog, SILVER_OHLCV_1M.identifier)
    if market is None:
        arrow = table.scan(selected_fields=("symbol",)).to_arrow()
    else:
        arrow = table.scan(row_filter=EqualTo("market", market), selected_fields=("symbol",)).to_arrow()
    return sorted(pc.unique(arrow.column("symbol")).to_pylist())
