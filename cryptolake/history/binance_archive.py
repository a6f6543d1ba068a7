"""Binance public data archives (data.binance.vision layout) from a local directory or a mirror's base URL.

Layout: ``data/{spot|futures/um}/{daily|monthly}/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM[-DD].zip`` and
``data/{spot|futures/um}/{daily|monthly}/aggTrades/SYMBOL/SYMBOL-aggTrades-YYYY-MM[-DD].zip``, each with an optional
``.CHECKSUM`` beside it (``<sha256>  <file name>``). Every file is checked against its checksum and a mismatch is
refused by name. The CSV inside may start with a header row (USD-M files gained one in 2022; spot files have none)
and its times may be milliseconds or microseconds (spot files switched to microseconds on 2025-01-01): both are
detected per file, and times are stored in milliseconds, as the REST klines and the live trades have them.

* Klines land in ``bronze.binance_klines`` beside the REST klines with ``source = 'archive'``; a file's rows
  replace the archive rows of its market, symbol and interval in the period the file covers (its day or month).
* aggTrades go through the Binance connector's normalizer (the live trades' contract checks) into
  ``bronze.trades_backfill`` with ``source = 'archive'`` and the file's layout path as ``origin``; a file's rows
  replace the rows of its origin. Binance's invalid-trade markers (``p = 0, q = 0, f = -1, l = -1``) are dropped
  and counted, rows failing the contract are skipped and counted by reason. Silver deduplicates them with the live
  trades on the natural key (exchange, market, symbol, agg_trade_id).

Importing again, or a replaced file, converges.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import requests
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, LessThan, Or

from cryptolake.klines import parse_kline
from cryptolake.lakehouse.writes import replace_rows
from cryptolake.payloads import SourcePayloadError
from cryptolake.tables import BRONZE_BINANCE_KLINES

MARKET_DIRS = {"spot": "spot", "usdm_futures": "futures/um"}
_MARKETS = {directory: market for market, directory in MARKET_DIRS.items()}
KLINES_PATH = re.compile(
    r"data/(?P<market>spot|futures/um)/(?P<frequency>daily|monthly)/(?P<kind>klines)/(?P<symbol>[A-Z0-9]+)/"
    r"(?P<interval>\w+)/(?P=symbol)-(?P=interval)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.zip"
)
AGG_TRADES_PATH = re.compile(
    r"data/(?P<market>spot|futures/um)/(?P<frequency>daily|monthly)/(?P<kind>aggTrades)/(?P<symbol>[A-Z0-9]+)/"
    r"(?P=symbol)-aggTrades-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.zip"
)
MICROSECONDS_FROM = 10**14  # epoch values above this are microseconds (ms reach 10^14 only in the year 5138)


class ArchiveError(ValueError):
    """A file cannot be imported (checksum mismatch, unreadable zip, a row that is not a kline); names the file."""


@dataclass(frozen=True)
class Archive:
    """One archive file: where it is (a path or a URL) and what its place in the layout says it holds."""

    location: str
    market: str
    frequency: str
    symbol: str
    interval: str  # "" for aggTrades
    period: str
    kind: str = "klines"  # klines | aggTrades
    path: str = ""  # the layout path, data/...

    @property
    def origin(self) -> str:
        """The file's layout path (``data/...``): the ``origin`` of its rows in bronze.trades_backfill."""
        return self.path or self.location

    @property
    def name(self) -> str:
        return self.location.rsplit("/", 1)[-1]

    def period_window(self) -> tuple[datetime, datetime]:
        """The UTC time range the file covers: its day, or its month."""
        year, month, *day = map(int, self.period.split("-"))
        start = datetime(year, month, day[0] if day else 1, tzinfo=UTC)
        if day:
            return start, start + timedelta(days=1)
        return start, datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def kline_archive_path(market: str, frequency: str, symbol: str, interval: str, period: str) -> str:
    """The file's path in the official layout, e.g. ``data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2024-03.zip``."""
    return f"data/{MARKET_DIRS[market]}/{frequency}/klines/{symbol}/{interval}/{symbol}-{interval}-{period}.zip"


def agg_trades_archive_path(market: str, frequency: str, symbol: str, period: str) -> str:
    """The file's path in the official layout, e.g. ``data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-03-01.zip``."""
    return f"data/{MARKET_DIRS[market]}/{frequency}/aggTrades/{symbol}/{symbol}-aggTrades-{period}.zip"


def _archive(location: str, relative: str) -> Archive | None:
    match = KLINES_PATH.fullmatch(relative) or AGG_TRADES_PATH.fullmatch(relative)
    if match is None:
        return None
    return Archive(
        location=location,
        market=_MARKETS[match["market"]],
        frequency=match["frequency"],
        symbol=match["symbol"],
        interval=match.groupdict().get("interval") or "",
        period=match["period"],
        kind=match["kind"],
        path=relative,
    )


def archive_at(source: str, relative: str) -> Archive:
    """The archive at layout path ``relative`` of ``source`` (the directory holding ``data/``, or a mirror's base
    URL); ArchiveError when the path is not one of the layout."""
    is_url = source.startswith(("http://", "https://"))
    archive = _archive(f"{source.rstrip('/')}/{relative}" if is_url else str(Path(source) / relative), relative)
    if archive is None:
        raise ArchiveError(f"{relative}: not a kline or aggTrades archive path of the official layout")
    return archive


def find_archives(root: Path) -> list[Archive]:
    """Every kline and aggTrades archive below ``root`` (the directory holding ``data/``), in layout order."""
    found = []
    for path in sorted(root.rglob("*.zip")):
        archive = _archive(str(path), path.relative_to(root).as_posix())
        if archive is not None:
            found.append(archive)
    return found


def find_kline_archives(root: Path) -> list[Archive]:
    """Every kline archive below ``root``, in layout order."""
    return [archive for archive in find_archives(root) if archive.kind == "klines"]


def mirror_archives(base_url: str, relatives: list[str]) -> list[Archive]:
    """The archives at ``base_url`` (a mirror of the site's root) for the given layout paths."""
    archives = []
    for relative in relatives:
        archive = _archive(f"{base_url.rstrip('/')}/{relative}", relative)
        if archive is None:
            raise ArchiveError(f"{relative}: not a kline or aggTrades archive path of the official layout")
        archives.append(archive)
    return archives


mirror_kline_archives = mirror_archives


def _fetch(location: str, *, optional: bool = False, timeout_s: float = 60.0) -> bytes | None:
    if location.startswith(("http://", "https://")):
        response = requests.get(location, timeout=timeout_s)
        if response.status_code == 404 and optional:
            return None
        response.raise_for_status()
        return response.content
    path = Path(location)
    if optional and not path.exists():
        return None
    return path.read_bytes()


def verified_bytes(archive: Archive) -> tuple[bytes, bool]:
    """The file's bytes and whether a checksum was there to check them; ArchiveError on a mismatch."""
    content = _fetch(archive.location)
    assert content is not None
    checksum = _fetch(archive.location + ".CHECKSUM", optional=True)
    if checksum is None:
        return content, False
    expected = checksum.decode("ascii", "replace").split()[0].lower() if checksum.strip() else ""
    actual = hashlib.sha256(content).hexdigest()
    if expected != actual:
        raise ArchiveError(f"{archive.name}: SHA-256 {actual} does not match its .CHECKSUM ({expected or 'empty'})")
    return content, True


def _csv_rows(archive: Archive, content: bytes) -> Iterator[list[str]]:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as bundle:
            members = [name for name in bundle.namelist() if name.endswith(".csv")]
            if len(members) != 1:
                raise ArchiveError(f"{archive.name}: expected one CSV inside, found {members}")
            text = bundle.read(members[0]).decode("utf-8")
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{archive.name}: not a zip file ({exc})") from None
    for row in csv.reader(io.StringIO(text)):
        if row:
            yield row


def _to_ms(value: str) -> str:
    number = int(value)
    return str(number // 1000) if number >= MICROSECONDS_FROM else value


def read_kline_archive(archive: Archive, content: bytes, fetched_at: datetime) -> list[dict[str, object]]:
    """The file's klines as ``bronze.binance_klines`` rows (header row skipped, microseconds made milliseconds)."""
    rows = []
    for number, row in enumerate(_csv_rows(archive, content), start=1):
        if number == 1 and not row[0].strip().isdigit():  # a header row (USD-M files since 2022)
            continue
        try:
            kline = parse_kline([_to_ms(row[0]), *row[1:6], _to_ms(row[6]), *row[7:]])
        except (SourcePayloadError, ValueError, IndexError) as exc:
            raise ArchiveError(f"{archive.name}, line {number}: not a kline row ({exc})") from None
        rows.append({
            "symbol": archive.symbol, "market": archive.market, "interval": archive.interval,
            "open_time": kline.open_time, "close_time": kline.close_time,
            "open": kline.open, "high": kline.high, "low": kline.low, "close": kline.close,
            "volume": kline.volume, "quote_volume": kline.quote_volume, "trades": kline.trades,
            "taker_buy_base_volume": kline.taker_buy_base_volume,
            "taker_buy_quote_volume": kline.taker_buy_quote_volume,
            "is_closed": True, "raw": ",".join(row), "source_url": archive.location, "ingested_at": fetched_at,
            "source": "archive",
        })  # fmt: skip
    if not rows:
        raise ArchiveError(f"{archive.name}: no kline rows")
    start, end = archive.period_window()
    outside = [row for row in rows if not start <= row["open_time"] < end]  # type: ignore[operator]
    if outside:
        raise ArchiveError(f"{archive.name}: {len(outside)} klines outside the file's period {archive.period}")
    return rows


def _period_filter(archive: Archive) -> BooleanExpression:
    """The archive rows of the file's market, symbol and interval in the period it covers."""
    start, end = archive.period_window()
    return And(
        And(EqualTo("source", "archive"), EqualTo("market", archive.market)),
        And(
            And(EqualTo("symbol", archive.symbol), EqualTo("interval", archive.interval)),
            And(GreaterThanOrEqual("open_time", start.isoformat()), LessThan("open_time", end.isoformat())),
        ),
    )


def _any_of(filters: Sequence[BooleanExpression]) -> BooleanExpression:
    """``Or`` of ``filters`` as a balanced tree (pyiceberg's visitors recurse: a chain of 300 would be deep)."""
    if len(filters) == 1:
        return filters[0]
    middle = len(filters) // 2
    return Or(_any_of(filters[:middle]), _any_of(filters[middle:]))


def write_kline_files(catalog: Catalog, files: Sequence[tuple[Archive, list[dict[str, object]]]],
                      snapshot_properties: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Replace, in one commit, the archive rows of each file's market, symbol and interval in the period it covers
    by the file's rows (so a bar a replaced file no longer holds is removed too); the rows written."""
    table = catalog.load_table(BRONZE_BINANCE_KLINES.identifier)
    frame = pa.Table.from_pylist([row for _, rows in files for row in rows], schema=table.schema().as_arrow())
    names = [archive.name for archive, _ in files]
    label = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} files)"
    where = _any_of([_period_filter(archive) for archive, _ in files])
    replace_rows(table, frame, where, {**(snapshot_properties or {}), "cryptolake.archive-file": label})
    return frame.num_rows


def write_klines(catalog: Catalog, archive: Archive, rows: list[dict[str, object]],
                 snapshot_properties: Mapping[str, str] | None = None) -> int:  # fmt: skip
    """Replace the archive rows of one file's market, symbol, interval and period by ``rows`` (one commit)."""
    return write_kline_files(catalog, [(archive, rows)], snapshot_properties)


def import_kline_archive(catalog: Catalog, archive: Archive,
                         snapshot_properties: Mapping[str, str] | None = None) -> tuple[int, bool]:  # fmt: skip
    """Verify, read and write one file; return (rows written, whether a checksum was checked)."""
    content, checked = verified_bytes(archive)
    rows = read_kline_archive(archive, content, datetime.now(UTC))
    return write_klines(catalog, archive, rows, snapshot_properties), checked


class KlineImport:
    """Kline files verified and read one by one, written together: one commit per ``max_rows`` rows read (a
    commit per file, five years of monthly files being 60 per series, grows the table's metadata with each and
    makes every later commit slower). Call :meth:`flush` after the last file."""

    def __init__(self, catalog: Catalog, *, max_rows: int = 500_000,
                 snapshot_properties: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self._catalog = catalog
        self._max_rows = max_rows
        self._properties = snapshot_properties
        self._pending: list[tuple[Archive, list[dict[str, object]]]] = []
        self._rows = 0

    def add(self, archive: Archive) -> tuple[int, bool]:
        """Verify and read one file (ArchiveError when it is refused); (its rows, whether a checksum was checked).
        Writes what is pending once it reaches ``max_rows``."""
        content, checked = verified_bytes(archive)
        rows = read_kline_archive(archive, content, datetime.now(UTC))
        self._pending.append((archive, rows))
        self._rows += len(rows)
        if self._rows >= self._max_rows:
            self.flush()
        return len(rows), checked

    @property
    def pending_files(self) -> int:
        """Files read and not written yet."""
        return len(self._pending)

    def flush(self) -> tuple[int, int]:
        """Write the files read since the last flush in one commit; (files, rows) written."""
        if not self._pending:
            return 0, 0
        files, pending = len(self._pending), self._pending
        self._pending, self._rows = [], 0
        return files, write_kline_files(self._catalog, pending, self._properties)


def archive_exists(location: str, *, timeout_s: float = 60.0) -> bool:
    """Whether a file is there: a path that exists, or a URL a mirror answers (``HEAD``; 404 means absent, other
    errors raise)."""
    if not location.startswith(("http://", "https://")):
        return Path(location).is_file()
    response = requests.head(location, timeout=timeout_s, allow_redirects=True)
    if response.status_code == 404:
        return False
    response.raise_for_status()
    return True


@dataclass(frozen=True)
class MonthFiles:
    """The files holding one month of a market, symbol and interval: the monthly file, or else the daily files
    found; ``missing`` holds the layout paths looked for and not found that should have been there."""

    archives: list[Archive]
    missing: list[str]


def month_kline_archives(source: str, market: str, symbol: str, interval: str, month: str, *,
                         today: date | None = None, timeout_s: float = 60.0) -> MonthFiles:  # fmt: skip
    """The files of ``month`` (``YYYY-MM``) at ``source`` (the directory holding ``data/``, or a mirror's base URL):
    the monthly file when it is there; else the daily files of the month's days before ``today`` (UTC) that are
    there, for a month Binance has not closed yet (the current one) or whose monthly file is absent.

    Missing: the monthly path when neither it nor any daily file is there (a month before the symbol was listed,
    or not mirrored); when daily files are there, the paths of the days before ``today`` that are not."""
    today = today or datetime.now(UTC).date()
    is_url = source.startswith(("http://", "https://"))

    def located(relative: str) -> Archive | None:
        location = f"{source.rstrip('/')}/{relative}" if is_url else str(Path(source) / relative)
        archive = _archive(location, relative)
        if archive is None:
            raise ArchiveError(f"{relative}: not a kline archive path of the official layout")
        return archive if archive_exists(location, timeout_s=timeout_s) else None

    monthly_path = kline_archive_path(market, "monthly", symbol, interval, month)
    monthly = located(monthly_path)
    if monthly is not None:
        return MonthFiles([monthly], [])
    year, number = map(int, month.split("-"))
    first = date(year, number, 1)
    following = date(year + number // 12, number % 12 + 1, 1)
    days = [first + timedelta(days=n) for n in range((min(following, today) - first).days)]
    if not days:  # the month has not begun before today: nothing is published yet
        return MonthFiles([], [])
    daily, absent = [], []
    for day in days:
        path = kline_archive_path(market, "daily", symbol, interval, day.isoformat())
        found = located(path)
        if found is None:
            absent.append(path)
        else:
            daily.append(found)
    return MonthFiles(daily, absent) if daily else MonthFiles([], [monthly_path])
