"""What a refresh of one Silver day has to read: the Iceberg snapshots its last commit of that day processed.

Every commit of a day of ``silver.trades`` (the full rebuild's overwrite and the refresh's append) carries, in its
snapshot summary, the day and the snapshots of ``bronze.trades`` and ``bronze.trades_backfill`` it read — in the
same atomic commit as the rows, so the mark can never run ahead of or behind the data. A refresh reads Bronze
*between* the marked snapshot and the current one (an Iceberg incremental append scan) instead of the whole day.

A refresh falls back to rebuilding the day in full whenever reading the increment would not give the same table:
no mark for the day (never built, or its commit was expired), the marked Bronze snapshot is no longer an ancestor,
a commit between them that is neither an append nor a replace (a compaction), or a change to the day in
``bronze.trades_backfill`` (archives and REST repairs). The caller adds the row-level reasons (a new trade whose key
Silver already holds; a quarantined future trade whose time has come).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.snapshots import Operation, Snapshot

from cryptolake.tables import BRONZE_TRADES, BRONZE_TRADES_BACKFILL
from cryptolake_dagster.defs.bronze.changes import days_added_since

DAY_PROPERTY = "silver.day"
BRONZE_PROPERTY = "silver.bronze-trades-snapshot"
BACKFILL_PROPERTY = "silver.bronze-trades-backfill-snapshot"
_NONE = "none"


@dataclass(frozen=True)
class BronzeState:
    """The snapshots of the two Bronze trade tables a Silver day was (or is to be) built from (None: empty)."""

    trades: int | None
    backfill: int | None

    def properties(self, day: date) -> dict[str, str]:
        """The snapshot-summary properties that mark a commit of ``day`` as built from this state."""
        return {
            DAY_PROPERTY: day.isoformat(),
            BRONZE_PROPERTY: _NONE if self.trades is None else str(self.trades),
            BACKFILL_PROPERTY: _NONE if self.backfill is None else str(self.backfill),
        }

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> BronzeState | None:
        trades, backfill = properties.get(BRONZE_PROPERTY), properties.get(BACKFILL_PROPERTY)
        if trades is None or backfill is None:
            return None
        return cls(None if trades == _NONE else int(trades), None if backfill == _NONE else int(backfill))


def current_bronze_state(catalog: Catalog) -> BronzeState:
    """The current snapshots of bronze.trades and bronze.trades_backfill: what a run reads, pinned."""
    snapshots = [catalog.load_table(t.identifier).current_snapshot() for t in (BRONZE_TRADES, BRONZE_TRADES_BACKFILL)]
    trades, backfill = (None if s is None else s.snapshot_id for s in snapshots)
    return BronzeState(trades, backfill)


def _properties(snapshot: Snapshot) -> Mapping[str, str]:
    return snapshot.summary if snapshot.summary is not None else {}


def snapshot_day(snapshot: Snapshot) -> str | None:
    """The Silver day a snapshot's commit wrote (None: not a marked Silver commit, e.g. a compaction)."""
    return _properties(snapshot).get(DAY_PROPERTY)


def ancestors(table: IcebergTable, newest: int | None = None) -> list[Snapshot]:
    """The lineage of ``newest`` (default: the current snapshot), newest first."""
    snapshot = table.current_snapshot() if newest is None else table.snapshot_by_id(newest)
    lineage = []
    while snapshot is not None:
        lineage.append(snapshot)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return lineage


def commits_since(table: IcebergTable, older: int | None, newer: int | None) -> list[Snapshot] | None:
    """The commits after ``older`` up to ``newer`` (newest first); None when ``older`` is not an ancestor of it."""
    if newer is None:
        return [] if older is None else None
    commits = []
    for snapshot in ancestors(table, newer):
        if snapshot.snapshot_id == older:
            return commits
        commits.append(snapshot)
    return None if older is not None else commits


@dataclass(frozen=True)
class DayMark:
    """The newest marked commit of a Silver day: its snapshot and the Bronze state it was built from."""

    snapshot_id: int
    state: BronzeState


def day_mark(silver: IcebergTable, day: date) -> DayMark | None:
    """The newest commit of ``day`` in silver.trades' current lineage that carries a Bronze mark."""
    for snapshot in ancestors(silver):
        if snapshot_day(snapshot) == day.isoformat():
            state = BronzeState.from_properties(_properties(snapshot))
            return None if state is None else DayMark(snapshot.snapshot_id, state)
    return None


def why_not_incremental(catalog: Catalog, mark: DayMark | None, now: BronzeState, day: date) -> str | None:
    """Why the Bronze commits since ``mark`` cannot be read as an increment of ``day`` (None: they can)."""
    if mark is None:
        return "no commit of the day carries a Bronze mark yet"
    if mark.state.trades is None and now.trades is not None:
        return f"the day's mark predates {BRONZE_TRADES.identifier}'s first commit"
    if mark.state.backfill != now.backfill:
        backfill = catalog.load_table(BRONZE_TRADES_BACKFILL.identifier)
        if mark.state.backfill is None or day in days_added_since(backfill, mark.state.backfill):
            return f"{BRONZE_TRADES_BACKFILL.identifier} changed the day"
    trades = catalog.load_table(BRONZE_TRADES.identifier)
    commits = commits_since(trades, mark.state.trades, now.trades)
    if commits is None:
        return f"{BRONZE_TRADES.identifier} snapshot {mark.state.trades} is no longer in the table's lineage"
    for snapshot in commits:
        operation = snapshot.summary.operation if snapshot.summary is not None else None
        if operation not in (Operation.APPEND, Operation.REPLACE):
            return f"{BRONZE_TRADES.identifier} snapshot {snapshot.snapshot_id} is an {operation} (not an append)"
    return None
