"""Which UTC days of a day-partitioned Iceberg table received rows since a given snapshot."""

from __future__ import annotations

from datetime import date, timedelta

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.snapshots import Operation

from cryptolake.utc import EPOCH

_EPOCH_DAY = EPOCH.date()


def days_added_since(table: IcebergTable, since_snapshot_id: int | None) -> set[date]:
    """Days (of the table's day partition) with data files added after ``since_snapshot_id``.

    Walks the current lineage back to ``since_snapshot_id``; if that snapshot is not an ancestor (expired or
    ``None``), every day with live data counts as changed. Replace snapshots (compaction, manifest rewrites by
    table maintenance) add files but no rows: they change no day.
    """
    io = table.io
    days: set[date] = set()
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since_snapshot_id:
        replaced = snapshot.summary is not None and snapshot.summary.operation == Operation.REPLACE
        for manifest in () if replaced else snapshot.manifests(io):
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                if entry.status == ManifestEntryStatus.ADDED and entry.data_file.partition[0] is not None:
                    days.add(_EPOCH_DAY + timedelta(days=int(entry.data_file.partition[0])))
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    if snapshot is None and since_snapshot_id is not None:
        # The cursor's snapshot left the lineage (expired / rolled back): rebuild every day with data.
        days |= {
            _EPOCH_DAY + timedelta(days=int(row["partition"]["trade_time_day"]))
            for row in table.inspect.partitions().to_pylist()
            if row["partition"]["trade_time_day"] is not None
        }
    return days
