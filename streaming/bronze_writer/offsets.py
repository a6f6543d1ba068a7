"""Kafka offsets stored in Iceberg snapshot summaries — the exactly-once handshake between Kafka and Bronze.

Each Bronze commit carries, as a snapshot-summary property, the *next* offset to read for every partition of the
topic (the method of Iceberg's Kafka Connect sink). Data and offsets land in one atomic commit, so after any crash
the writer resumes exactly after the last committed row. The broker's cluster id is stored too: offsets of a
different broker incarnation (e.g. the in-memory local broker after a restart) do not apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyiceberg.table import Table as IcebergTable

from cryptolake.broker import OFFSETS_PROPERTY_PREFIX


def offsets_property(topic: str) -> str:
    return OFFSETS_PROPERTY_PREFIX + topic


@dataclass(frozen=True)
class CommittedOffsets:
    cluster_id: str
    next_offsets: dict[int, int]

    def encode(self) -> str:
        return json.dumps(
            {"cluster_id": self.cluster_id, "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())}},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> CommittedOffsets:
        data = json.loads(text)
        return cls(data["cluster_id"], {int(p): int(o) for p, o in data["next_offsets"].items()})


def recorded_offsets(table: IcebergTable, topic: str) -> CommittedOffsets | None:
    """The offsets of the newest snapshot in the current lineage that recorded any for ``topic``."""
    key = offsets_property(topic)
    snapshot = table.current_snapshot()
    while snapshot is not None:
        value = snapshot.summary.get(key) if snapshot.summary else None
        if value:
            return CommittedOffsets.decode(value)
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return None


def newest_snapshot_not_from(table: IcebergTable, topic: str, cluster_id: str) -> int | None:
    """The newest snapshot of the current lineage whose rows of ``topic`` were all read from brokers other than
    ``cluster_id``: the newest one recording offsets of another cluster id, when no snapshot after it recorded
    ``cluster_id``'s. None when there is none (Bronze holds nothing of ``topic`` but what that broker served).

    After a broker lost its log, the rows of this snapshot are a prefix of what the old broker held, per partition:
    what the producer must publish again is everything after them.
    """
    key = offsets_property(topic)
    snapshot = table.current_snapshot()
    while snapshot is not None:
        value = snapshot.summary.get(key) if snapshot.summary else None
        if value and CommittedOffsets.decode(value).cluster_id != cluster_id:
            return snapshot.snapshot_id
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None
    return None
