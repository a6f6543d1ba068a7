"""The producer's checkpoint: the highest *acknowledged* aggregate id per market and symbol.

Written atomically every few seconds. After a crash (even kill -9) the checkpoint can only be behind what Kafka
holds, never ahead: on restart the first trade of each symbol reveals the gap since the checkpoint, which is
repaired over REST. Trades repaired twice are duplicates, which Silver collapses on the natural key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def load_checkpoint(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {str(key): int(value) for key, value in data.get("last_delivered_ids", {}).items()}


def save_checkpoint(path: Path, last_delivered_ids: dict[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"last_delivered_ids": dict(sorted(last_delivered_ids.items()))}, indent=1))
    os.replace(tmp, path)
