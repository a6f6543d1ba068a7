"""The producer's checkpoint: the highest *acknowledged* aggregate id per market and symbol, and the broker.

Written atomically every few seconds. After a crash (even kill -9) the checkpoint can only be behind what Kafka
holds, never ahead: on restart the first trade of each symbol reveals the gap since the checkpoint, which is
repaired over REST. Trades repaired twice are duplicates, which the Bronze writer drops.

The checkpoint names the broker incarnation (its cluster id) that acknowledged those ids: acknowledged by a broker
that has lost its log since (the in-memory local broker after a kill), they prove nothing, and the producer resumes
from what Bronze holds instead (``streaming.producer.resume``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Checkpoint:
    last_delivered_ids: dict[str, int] = field(default_factory=dict)
    cluster_id: str | None = None  # None: written before the broker was recorded


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Checkpoint()
    ids = {str(key): int(value) for key, value in data.get("last_delivered_ids", {}).items()}
    return Checkpoint(ids, data.get("cluster_id"))


def save_checkpoint(path: Path, last_delivered_ids: dict[str, int], cluster_id: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data = {"cluster_id": cluster_id, "last_delivered_ids": dict(sorted(last_delivered_ids.items()))}
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
