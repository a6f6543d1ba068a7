"""Daily / hourly OHLCV history from CSV files in CryptoDataDownload's layout, into ``bronze.ohlcv_csv``.

The layout: an optional first line of text (the site's URL), then a header naming at least ``date``, ``symbol``,
``open``, ``high``, ``low``, ``close`` and two ``Volume <asset>`` columns (base and quote, told apart by the
symbol), optionally ``unix`` and ``tradecount``; rows newest first. Dates are ``YYYY-MM-DD``,
``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD HH-AM`` (``11-PM``), UTC. The interval (1d or 1h) comes from the spacing
of the dates.

Numbers are kept exact (``Decimal`` of the text); a row that cannot be read — a bad date or number, a price with
more than 12 decimals, a high below the low — is not imported and is reported with its line number and reason.
Importing a file replaces the rows of its (exchange, symbol, interval) in the file's time range, so importing it
again, or a corrected copy, converges.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

from cryptolake.lakehouse.writes import replace_rows
from cryptolake.payloads import SourcePayloadError, TooManyDecimalsError, exact_decimal
from cryptolake.tables import BRONZE_OHLCV_CSV

SCALE = 12  # bronze.ohlcv_csv stores DECIMAL(38, 12)
_INTEGER_DIGITS = 38 - SCALE
_INTERVALS = {86_400: "1d", 3_600: "1h"}
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %I-%p", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_REQUIRED = ("date", "symbol", "open", "high", "low", "close")


class CsvImportError(ValueError):
    """The file cannot be imported at all (no header, no volume columns, no valid row, an unknown interval)."""


@dataclass
class CsvImport:
    """What a file held: the rows to import and the rows refused (line number, reason)."""

    path: Path
    exchange: str
    symbol: str = ""
    interval: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(reason.split(":")[0] for _, reason in self.rejected)


def parse_date(text: str) -> datetime:
    """A CryptoDataDownload date as an aware UTC datetime (ValueError names the text when no format fits)."""
    value = text.strip().upper()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"unreadable date {text!r} (expected YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or YYYY-MM-DD HH-AM)")


def _decimal(text: str, column: str, *, optional: bool = False) -> Decimal | None:
    text = text.strip()
    if not text and optional:
        return None
    try:
        value = exact_decimal(text, SCALE, column)
    except TooManyDecimalsError:
        raise ValueError(f"too_many_decimals: {column}={text!r} (at most {SCALE})") from None
    except SourcePayloadError:
        raise ValueError(f"bad_number: {column}={text!r}") from None
    if value < 0 or value.adjusted() >= _INTEGER_DIGITS:
        raise ValueError(f"bad_number: {column}={text!r} (negative, or too large for DECIMAL(38, {SCALE}))")
    return value


def _date(text: str) -> datetime:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise ValueError(f"bad_date: {exc}") from None


def _count(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"bad_number: tradecount={text!r}")
    return int(text)


def _split_symbol(symbol: str, volume_assets: list[str]) -> str:
    """The base asset among the two volume columns' assets: the one the symbol starts with."""
    plain = symbol.replace("/", "").replace("-", "").upper()
    bases = [asset for asset in volume_assets if plain.startswith(asset)]
    if len(bases) != 1:
        raise CsvImportError(f"cannot tell base from quote volume: symbol {symbol!r}, columns for {volume_assets}")
    return bases[0]


def read_csv(path: Path, exchange: str) -> CsvImport:
    """Parse ``path``; raises :class:`CsvImportError` for a file that is not in the layout at all."""
    result = CsvImport(path=path, exchange=exchange)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        lines = list(csv.reader(handle))
    header_at = next(
        (i for i, line in enumerate(lines[:5]) if {c.strip().lower() for c in line} >= set(_REQUIRED)), None
    )
    if header_at is None:
        raise CsvImportError(f"{path.name}: no header with {', '.join(_REQUIRED)} in its first lines")
    header = [c.strip().lower() for c in lines[header_at]]
    index = {name: header.index(name) for name in header}
    volumes = [(i, m.group(1).upper()) for i, name in enumerate(header) if (m := re.fullmatch(r"volume\s+(\S+)", name))]
    if len(volumes) != 2:
        raise CsvImportError(f"{path.name}: expected two 'Volume <asset>' columns, found {[a for _, a in volumes]}")
    trades_at = index.get("tradecount")
    base_asset: str | None = None
    for number, line in enumerate(lines[header_at + 1 :], start=header_at + 2):
        if not any(cell.strip() for cell in line):
            continue
        if len(line) < len(header):
            result.rejected.append((number, f"short_row: {len(line)} of {len(header)} columns"))
            continue
        try:
            symbol = line[index["symbol"]].strip()
            if base_asset is None:
                base_asset = _split_symbol(symbol, [asset for _, asset in volumes])
            base_i = next(i for i, asset in volumes if asset == base_asset)
            quote_i = next(i for i, asset in volumes if asset != base_asset)
            row = {
                "exchange": exchange,
                "symbol": symbol.replace("/", "").replace("-", "").upper(),
                "open_time": _date(line[index["date"]]),
                **{name: _decimal(line[index[name]], name) for name in ("open", "high", "low", "close")},
                "base_volume": _decimal(line[base_i], "base_volume", optional=True),
                "quote_volume": _decimal(line[quote_i], "quote_volume", optional=True),
                "trade_count": _count(line[trades_at]) if trades_at is not None else None,
            }
        except CsvImportError:
            raise
        except ValueError as exc:
            result.rejected.append((number, str(exc)))
            continue
        if not row["low"] <= min(row["open"], row["close"]) <= max(row["open"], row["close"]) <= row["high"]:
            result.rejected.append((number, "inconsistent_ohlc: low <= open, close <= high does not hold"))
            continue
        result.rows.append(row)
    if not result.rows:
        raise CsvImportError(f"{path.name}: no readable row ({len(result.rejected)} refused)")
    symbols = {row["symbol"] for row in result.rows}
    if len(symbols) != 1:
        raise CsvImportError(f"{path.name}: one symbol per file expected, found {sorted(symbols)}")
    result.symbol = symbols.pop()
    result.interval = _interval(result.rows, path)
    seen: set[datetime] = set()
    unique = []
    for row in result.rows:  # a duplicated date keeps its first (newest-first files: the latest written) row
        if row["open_time"] in seen:
            result.rejected.append((0, f"duplicate_date: {row['open_time'].isoformat()}"))
            continue
        seen.add(row["open_time"])
        unique.append({**row, "interval": result.interval, "source_file": path.name})
    result.rows = sorted(unique, key=lambda r: r["open_time"])
    return result


def _interval(rows: list[dict[str, Any]], path: Path) -> str:
    times = sorted({row["open_time"] for row in rows})
    if len(times) < 2:
        return "1d" if times[0].hour == 0 else "1h"
    step = min(int((b - a).total_seconds()) for a, b in pairwise(times))
    if step not in _INTERVALS:
        raise CsvImportError(f"{path.name}: rows {step} s apart; only daily and hourly files are supported")
    return _INTERVALS[step]


def write_import(catalog: Catalog, parsed: CsvImport, imported_at: datetime | None = None) -> int:
    """Replace the rows of the file's (exchange, symbol, interval) in its time range by its rows; return the count."""
    table = catalog.load_table(BRONZE_OHLCV_CSV.identifier)
    moment = imported_at or datetime.now(UTC)
    frame = pa.Table.from_pylist(
        [{**row, "imported_at": moment} for row in parsed.rows], schema=table.schema().as_arrow()
    )
    window = And(
        And(EqualTo("exchange", parsed.exchange), EqualTo("symbol", parsed.symbol)),
        And(
            EqualTo("interval", parsed.interval),
            And(
                GreaterThanOrEqual("open_time", parsed.rows[0]["open_time"].isoformat()),
                LessThanOrEqual("open_time", parsed.rows[-1]["open_time"].isoformat()),
            ),
        ),
    )
    replace_rows(table, frame, window, {"cryptolake.source-file": parsed.path.name})
    return frame.num_rows
