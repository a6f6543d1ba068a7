"""Reads behind the API: Gold tables held in memory per Iceberg snapshot, filtered with Arrow.

A request never plans an Iceberg scan while the table is unchanged. Per table the cache keeps the table's current
snapshot, checked at most every ``api_snapshot_poll_s`` seconds with one cheap catalog look-up (the metadata
location; the table metadata is read again only when it changed). Data is loaded once per snapshot: whole tables
for the small ones (daily facts, dimensions, hourly and coarser bars), one UTC day at a time for the 1- and
5-minute bars, each split by (symbol, market) and sorted by time so a request is a binary search and a slice.
``as_of`` (a snapshot id or a time) reads the table as it was then, through the same cache.

Routes answer through :meth:`Lake.serve`: on the event loop when everything the answer reads is cached (a cached
answer then costs no thread hand-off), on a worker thread when it needs the catalog, a load or an encoding.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar

import anyio.to_thread
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.snapshots import Snapshot

from cryptolake.logging import get_logger
from cryptolake.utc import as_utc

log = get_logger(__name__)

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")
# True while an answer is attempted on the event loop: a read that needs the catalog or the warehouse raises
# WouldBlockError instead of blocking the loop (see Lake.serve).
_ON_LOOP: ContextVar[bool] = ContextVar("lake_on_loop", default=False)


class WouldBlockError(Exception):
    """An answer attempted on the event loop needs I/O (a catalog look-up, a load, an encoding): it is retried on a
    worker thread."""


class TableMissingError(LookupError):
    """The table does not exist yet (the pipeline has not built it)."""

    def __init__(self, identifier: str) -> None:
        super().__init__(identifier)
        self.identifier = identifier


class SnapshotNotFoundError(LookupError):
    """``as_of`` names a snapshot id the table does not have (or had, before expiry)."""

    def __init__(self, identifier: str, snapshot_id: int) -> None:
        super().__init__(f"{identifier} has no snapshot {snapshot_id}")
        self.identifier = identifier
        self.snapshot_id = snapshot_id


AsOf = int | datetime | None


@dataclass(frozen=True)
class Partitions:
    """Rows of one load, split by key columns and sorted by a time column within each key."""

    data: dict[tuple[Any, ...], pa.Table]
    times: dict[tuple[Any, ...], np.ndarray]  # the time column as int64 microseconds since the epoch, per key


@dataclass(frozen=True)
class View:
    """What a read served: the table, the snapshot (None: the table was empty or did not exist then)."""

    identifier: str
    snapshot_id: int | None
    committed_at: datetime | None
    exists: bool = True


@dataclass
class _TableState:
    checked_at: float = -1e18  # monotonic time of the last catalog look-up
    metadata_location: str | None = None
    table: IcebergTable | None = None
    revalidating: bool = False  # a thread is looking the table up again (see Lake.table)
    lock: threading.Lock = field(default_factory=threading.Lock)


def micros(moment: datetime) -> int:
    delta = as_utc(moment) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(value))


def _time_micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_date(column.type):
        days = pc.cast(column, pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
        return days.astype(np.int64) * 86_400_000_000
    unit = column.type.unit
    values = pc.cast(column, pa.timestamp(unit, tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    return (
        values.astype(np.int64)
        * {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[unit]
        // (1_000 if unit == "ns" else 1)
    )


def partition(table: pa.Table, keys: tuple[str, ...], time_column: str | None) -> Partitions:
    """Split ``table`` by ``keys`` (each part sorted by ``time_column``, ties by the remaining columns' order)."""
    if table.num_rows == 0:
        return Partitions({}, {})
    sort = [(k, "ascending") for k in keys]
    if time_column:
        sort.append((time_column, "ascending"))
    if "exchange" in table.column_names and "exchange" not in keys:
        sort.append(("exchange", "ascending"))
    ordered = table.sort_by(sort) if sort else table
    if not keys:
        groups = {(): ordered}
    else:
        columns = [ordered.column(k).to_numpy(zero_copy_only=False) for k in keys]
        change = np.zeros(ordered.num_rows, dtype=bool)
        change[0] = True
        for values in columns:
            change[1:] |= values[1:] != values[:-1]
        starts = [*np.flatnonzero(change).tolist(), ordered.num_rows]
        groups = {
            tuple(values[a] for values in columns): ordered.slice(a, b - a) for a, b in itertools.pairwise(starts)
        }
    times = {key: _time_micros(part.column(time_column)) for key, part in groups.items()} if time_column else {}
    return Partitions(groups, times)


class LruCache:
    """A small thread-safe LRU of computed values, with one loader at a time per key."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def get_or_load(self, key: Hashable, load: Callable[[], Any]) -> Any:
        value = self.get(key)
        if value is not None:
            return value
        if _ON_LOOP.get():
            raise WouldBlockError(key)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is None:
                value = load()
                self.put(key, value)
        with self._lock:
            self._key_locks.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._items)


def _is_sql_catalog(catalog: Catalog) -> bool:
    return type(catalog).__name__ == "SqlCatalog" and hasattr(catalog, "engine")


def _sql_metadata_location(catalog: Catalog, identifier: str) -> str | None:
    """The table's current metadata location from the SQL catalog's own table: one indexed query."""
    from pyiceberg.catalog.sql import IcebergTables
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    namespace, _, name = identifier.rpartition(".")
    with Session(catalog.engine) as session:  # type: ignore[attr-defined]
        return session.scalar(
            select(IcebergTables.metadata_location).where(
                IcebergTables.catalog_name == catalog.name,
                IcebergTables.table_namespace == namespace,
                IcebergTables.table_name == name,
            )
        )


class Lake:
    """The API's read layer: snapshot-keyed caches over a catalog (``get_catalog`` called lazily)."""

    def __init__(
        self,
        catalog: Callable[[], Catalog],
        *,
        poll_interval_s: float = 1.0,
        max_loads: int = 256,
        max_responses: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._poll = poll_interval_s
        self._clock = clock
        self._states: dict[str, _TableState] = {}
        self._states_lock = threading.Lock()
        self.loads = LruCache(max_loads)  # (identifier, snapshot id, part) -> Partitions
        self.responses = LruCache(max_responses)  # (route, resolved parameters, snapshot ids) -> body bytes
        self.load_count = 0  # loads done (data read from the warehouse), for tests and /metrics

    # --- the current table ---------------------------------------------------------------------------------------
    def _state(self, identifier: str) -> _TableState:
        with self._states_lock:
            return self._states.setdefault(identifier, _TableState())

    def table(self, identifier: str) -> IcebergTable:
        """The table's current metadata (cached; the catalog is asked at most every poll interval).

        On the event loop (see :meth:`serve`) a table checked within the last two poll intervals is served as last
        seen while one thread looks it up again (stale-while-revalidate): no request waits for the catalog, and a
        new snapshot is still seen within about one poll interval."""
        state = self._state(identifier)
        age = self._clock() - state.checked_at
        if age < self._poll:
            if state.table is None:
                raise TableMissingError(identifier)
            return state.table
        if _ON_LOOP.get():
            if state.table is None or age >= 2 * self._poll:
                raise WouldBlockError(identifier)
            self._revalidate(identifier, state)
            return state.table
        return self._look_up(identifier, state)

    def _look_up(self, identifier: str, state: _TableState) -> IcebergTable:
        with state.lock:
            if self._clock() - state.checked_at < self._poll:  # another thread refreshed it meanwhile
                if state.table is None:
                    raise TableMissingError(identifier)
                return state.table
            catalog = self._catalog()
            if _is_sql_catalog(catalog):
                location = _sql_metadata_location(catalog, identifier)
                if location is None:
                    state.table, state.metadata_location = None, None
                elif location != state.metadata_location or state.table is None:
                    state.table = self._load_table(catalog, identifier)
                    state.metadata_location = state.table.metadata_location if state.table else None
            else:
                state.table = self._load_table(catalog, identifier)
                state.metadata_location = state.table.metadata_location if state.table else None
            state.checked_at = self._clock()
            if state.table is None:
                raise TableMissingError(identifier)
            return state.table

    def _revalidate(self, identifier: str, state: _TableState) -> None:
        """Look the table up again on a thread of its own (one at a time per table)."""
        with self._states_lock:
            if state.revalidating:
                return
            state.revalidating = True

        def look_up() -> None:
            try:
                self._look_up(identifier, state)
            except TableMissingError:
                pass
            except Exception as exc:  # the catalog is down: requests keep the last metadata, the next one retries
                log.warning("lake_revalidate_failed", table=identifier, error=str(exc))
            finally:
                state.revalidating = False

        threading.Thread(target=look_up, name="lake-revalidate", daemon=True).start()

    @staticmethod
    def _load_table(catalog: Catalog, identifier: str) -> IcebergTable | None:
        try:
            return catalog.load_table(identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None

    def refresh(self) -> None:
        """Forget when the tables were last checked: the next read asks the catalog."""
        with self._states_lock:
            for state in self._states.values():
                state.checked_at = -1e18

    def snapshot(self, identifier: str, as_of: AsOf = None) -> tuple[IcebergTable, Snapshot | None]:
        """The table and the snapshot to read: the current one, the one with id ``as_of``, or the one that was
        current at time ``as_of`` (None when the table had no snapshot then)."""
        table = self.table(identifier)
        if as_of is None:
            return table, table.current_snapshot()
        if isinstance(as_of, int):
            found = table.snapshot_by_id(as_of)
            if found is None:
                raise SnapshotNotFoundError(identifier, as_of)
            return table, found
        at_ms = micros(as_of) // 1000
        log_entries = table.metadata.snapshot_log
        times = [entry.timestamp_ms for entry in log_entries]
        index = bisect_right(times, at_ms) - 1
        if index < 0:
            return table, None
        return table, table.snapshot_by_id(log_entries[index].snapshot_id)

    # --- loads ---------------------------------------------------------------------------------------------------
    def view(self, identifier: str, as_of: AsOf = None) -> View:
        try:
            _, snap = self.snapshot(identifier, as_of)
        except TableMissingError:
            return View(identifier, None, None, exists=False)
        committed = from_micros(snap.timestamp_ms * 1000) if snap is not None else None
        return View(identifier, snap.snapshot_id if snap is not None else None, committed)

    def load(
        self,
        identifier: str,
        *,
        keys: tuple[str, ...] = (),
        time_column: str | None = None,
        day: date | None = None,
        as_of: AsOf = None,
    ) -> tuple[View, Partitions]:
        """Rows of the table (or, with ``day``, of one UTC day of ``time_column``) at the snapshot ``as_of``
        resolves to, split by ``keys``. A missing table or one without snapshot reads as no rows."""
        try:
            table, snap = self.snapshot(identifier, as_of)
        except TableMissingError:
            return View(identifier, None, None, exists=False), Partitions({}, {})
        if snap is None:
            return View(identifier, None, None), Partitions({}, {})
        view = View(identifier, snap.snapshot_id, from_micros(snap.timestamp_ms * 1000))
        cache_key = (identifier, snap.snapshot_id, keys, time_column, day)

        def load() -> Partitions:
            started = time.perf_counter()
            scan_kwargs: dict[str, Any] = {"snapshot_id": snap.snapshot_id}
            if day is not None and time_column is not None:
                low = datetime(day.year, day.month, day.day, tzinfo=UTC)
                scan_kwargs["row_filter"] = And(
                    GreaterThanOrEqual(time_column, low.isoformat()),
                    LessThan(time_column, (low + timedelta(days=1)).isoformat()),
                )
            arrow = table.scan(**scan_kwargs).to_arrow()
            parts = partition(arrow, keys, time_column)
            self.load_count += 1
            log.debug(
                "lake_load", table=identifier, snapshot_id=snap.snapshot_id, day=str(day) if day else None,
                rows=arrow.num_rows, ms=round((time.perf_counter() - started) * 1000, 1),
            )  # fmt: skip
            return parts

        return view, self.loads.get_or_load(cache_key, load)

    def rows(
        self,
        identifier: str,
        key: tuple[Any, ...],
        *,
        keys: tuple[str, ...],
        time_column: str,
        start: datetime,
        end: datetime,
        limit: int,
        by_day: bool,
        as_of: AsOf = None,
        newest: bool = False,
    ) -> tuple[View, pa.Table]:
        """Rows of ``key`` with ``time_column`` in [start, end), oldest first, at most ``limit`` (the oldest, or
        with ``newest`` the newest ones, still oldest first)."""
        low, high = micros(start), micros(end)
        slices: list[pa.Table] = []
        view: View | None = None
        days: list[date | None] = [None]
        if by_day:
            present = self.days_present(identifier, as_of)
            if present is not None:
                first, last = as_utc(start).date(), (as_utc(end) - timedelta(microseconds=1)).date()
                days = sorted(d for d in present if first <= d <= last)
            else:
                days = list(_days(start, end))
            if newest:
                days.reverse()
        collected = 0
        for part_day in days:
            view, parts = self.load(identifier, keys=keys, time_column=time_column, day=part_day, as_of=as_of)
            if key not in parts.data:
                continue
            times = parts.times[key]
            a, b = np.searchsorted(times, low, "left"), np.searchsorted(times, high, "left")
            if b > a:
                slices.append(parts.data[key].slice(int(a), int(b - a)))
                collected += int(b - a)
            if collected >= limit:
                break
        if newest:
            slices.reverse()
        if view is None:
            view = self.view(identifier, as_of)
        if not slices:
            return view, pa.table({})
        result = pa.concat_tables(slices) if len(slices) > 1 else slices[0]
        if result.num_rows > limit:
            result = result.slice(result.num_rows - limit, limit) if newest else result.slice(0, limit)
        return view, result

    def days_present(self, identifier: str, as_of: AsOf = None) -> frozenset[date] | None:
        """UTC days with rows in a ``days()``-partitioned table at the snapshot (from the manifests, once per
        snapshot); None when the table is not partitioned by day."""
        try:
            table, snap = self.snapshot(identifier, as_of)
        except TableMissingError:
            return frozenset()
        if snap is None:
            return frozenset()

        def load() -> frozenset[date] | None:
            spec = table.spec()
            if not spec.fields or str(spec.fields[0].transform) != "day":
                return None
            parts = table.inspect.partitions(snapshot_id=snap.snapshot_id)
            values = pc.struct_field(parts.column("partition"), 0).to_pylist()
            return frozenset(
                v if isinstance(v, date) else EPOCH.date() + timedelta(days=int(v)) for v in values if v is not None
            )

        return self.loads.get_or_load((identifier, snap.snapshot_id, "days"), lambda: _Boxed(load())).value

    def keys(self, identifier: str, keys: tuple[str, ...], as_of: AsOf = None) -> tuple[View, set[tuple[Any, ...]]]:
        view, parts = self.load(identifier, keys=keys, as_of=as_of)
        return view, set(parts.data)

    def cached_response(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        return self.responses.get_or_load(key, build)

    def is_current(self, reads: Iterable[tuple[str, int]]) -> bool:
        """Whether each table's current snapshot is the given one, known without blocking (False when unsure)."""
        token = _ON_LOOP.set(True)
        try:
            return all(
                self.table(identifier).metadata.current_snapshot_id == snapshot for identifier, snapshot in reads
            )
        except (WouldBlockError, TableMissingError):
            return False
        finally:
            _ON_LOOP.reset(token)

    async def serve(self, answer: Callable[[], T]) -> T:
        """``answer()`` on the event loop when everything it reads is cached and current (no thread hand-off: a
        cached answer costs microseconds), else on a worker thread. ``answer`` must only read (it may be started
        on the loop, stopped by WouldBlockError, and run again on a thread)."""
        token = _ON_LOOP.set(True)
        try:
            return answer()
        except WouldBlockError:
            pass
        finally:
            _ON_LOOP.reset(token)
        return await anyio.to_thread.run_sync(answer)


@dataclass(frozen=True)
class _Boxed:
    value: Any  # a cached value that may be None


def _days(start: datetime, end: datetime) -> Iterator[date]:
    day = as_utc(start).date()
    last = (as_utc(end) - timedelta(microseconds=1)).date()
    while day <= last:
        yield day
        day += timedelta(days=1)
