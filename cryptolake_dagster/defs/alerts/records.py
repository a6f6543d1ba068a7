"""The rows the alerts sensors append: quality.alerts (one per failed run) and quality.asset_runs (per finished run,
one per asset it materialized), read from the run and its event log in the Dagster instance."""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog

from cryptolake.tables import QUALITY_ALERTS, QUALITY_ASSET_RUNS, Table
from cryptolake_dagster.asset_keys import table_key

PARTITION_TAG: Final = "dagster/partition"
RANGE_START_TAG: Final = "dagster/asset_partition_range_start"
RANGE_END_TAG: Final = "dagster/asset_partition_range_end"
MAX_MESSAGE: Final = 4000

#: The two tables as assets of the lineage graph: written by the sensors, materialized by no run.
alerts_asset: Final = dg.AssetSpec(
    key=table_key(QUALITY_ALERTS), description=QUALITY_ALERTS.description, group_name="quality",
    kinds={"iceberg"}, metadata={"table": QUALITY_ALERTS.identifier},
)  # fmt: skip
asset_runs_asset: Final = dg.AssetSpec(
    key=table_key(QUALITY_ASSET_RUNS), description=QUALITY_ASSET_RUNS.description, group_name="quality",
    kinds={"iceberg"}, metadata={"table": QUALITY_ASSET_RUNS.identifier},
)  # fmt: skip


def run_partition(tags: Mapping[str, str]) -> str | None:
    """The partition a run covers from its tags: a day, ``start...end`` for a ranged run, or None."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def run_end_time(instance: dg.DagsterInstance, run_id: str) -> datetime:
    """When the run ended (its record's end time), else now."""
    record = instance.get_run_record_by_id(run_id)
    end = record.end_time if record is not None else None
    return datetime.fromtimestamp(end, UTC) if end else datetime.now(UTC)


def failure_row(
    run: dg.DagsterRun, message: str | None, step_failures: Sequence[dg.DagsterEvent], failed_at: datetime
) -> dict[str, Any]:
    """The quality.alerts row of a failed run: the run's failure message and the first failed step's error."""
    steps = [event.step_key for event in step_failures if event.step_key]
    text = (message or f"run {run.run_id} of {run.job_name} failed").strip()
    for event in step_failures:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # Dagster's wrapper -> the op's own exception
            error = error.cause
        if error is not None:
            message = error.message.strip()  # Dagster's text usually starts with the class name already
            if error.cls_name and not message.startswith(f"{error.cls_name}:"):
                message = f"{error.cls_name}: {message}"
            text += f" | {event.step_key}: {message}"
            break
    now = datetime.now(UTC)
    return {
        "alert_id": run.run_id, "kind": "run_failure", "job_name": run.job_name, "run_id": run.run_id,
        "partition_key": run_partition(run.tags), "message": text[:MAX_MESSAGE],
        "failed_steps": ", ".join(dict.fromkeys(steps)) or None,
        "tags": json.dumps(dict(run.tags), sort_keys=True), "raised_at": failed_at, "recorded_at": now,
    }  # fmt: skip


def asset_run_rows(instance: dg.DagsterInstance, run: dg.DagsterRun, status: str) -> list[dict[str, Any]]:
    """One quality.asset_runs row per asset the run materialized: its newest materialization time, the partition
    (one key, or ``first...last`` of the keys it materialized) and how many partitions."""
    per_asset: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is None:
            continue
        key = materialization.asset_key.to_user_string()
        seen = per_asset.setdefault(key, {"partitions": set(), "at": entry.timestamp})
        if materialization.partition is not None:
            seen["partitions"].add(materialization.partition)
        seen["at"] = max(seen["at"], entry.timestamp)
    now = datetime.now(UTC)
    rows = []
    for key, seen in sorted(per_asset.items()):
        partitions = sorted(seen["partitions"])
        partition = None
        if partitions:
            partition = partitions[0] if len(partitions) == 1 else f"{partitions[0]}...{partitions[-1]}"
        rows.append({
            "asset_key": key, "run_id": run.run_id, "job_name": run.job_name, "run_status": status,
            "partition_key": partition, "partitions": len(partitions),
            "materialized_at": datetime.fromtimestamp(seen["at"], UTC), "recorded_at": now,
        })  # fmt: skip
    return rows


def append(catalog: Catalog, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append ``rows`` to ``table`` in one commit (raises: the sensor then evaluates the run again)."""
    if not rows:
        return
    iceberg = catalog.load_table(table.identifier)
    iceberg.append(pa.Table.from_pylist(list(rows), schema=iceberg.schema().as_arrow()))
