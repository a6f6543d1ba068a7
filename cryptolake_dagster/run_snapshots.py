"""Iceberg snapshots tagged with the Dagster run that committed them (snapshot-summary property ``dagster.run-id``).

Assets pass :func:`run_snapshot_properties` to the writes of :mod:`cryptolake.lakehouse.writes` and report the
snapshot they committed in their materialization metadata.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.snapshots import Snapshot

from cryptolake.tables import Table

RUN_ID_PROPERTY = "dagster.run-id"


def run_snapshot_properties(run_id: str) -> dict[str, str]:
    """Snapshot-summary properties that tag a commit with the Dagster run ``run_id``."""
    return {RUN_ID_PROPERTY: run_id}


def run_snapshot(table: IcebergTable, run_id: str) -> Snapshot | None:
    """The newest snapshot of ``table`` committed by Dagster run ``run_id`` (snapshot property), if any."""
    for snapshot in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0, reverse=True):
        if snapshot.summary is not None and snapshot.summary[RUN_ID_PROPERTY] == run_id:
            return snapshot
    return None


def snapshot_id(catalog: Catalog, table: Table, run_id: str | None = None) -> str:
    """The id of the snapshot run ``run_id`` committed, else of the table's current snapshot (``none``: empty)."""
    iceberg_table = catalog.load_table(table.identifier)
    snapshot = run_snapshot(iceberg_table, run_id) if run_id else None
    if snapshot is None:
        snapshot = iceberg_table.current_snapshot()
    return str(snapshot.snapshot_id) if snapshot else "none"
