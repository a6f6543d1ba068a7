"""The pipeline's status as the lakehouse records it, shared by the API (``/api/v1/pipeline/*``) and the Dagster
alerts sensors (``cryptolake_dagster/defs/alerts/``), which may not import each other (the layering test):

* freshness: per layer its main table and the newest data time in it, from the data files' column upper bounds in
  the snapshot's manifests (no data is read; a file written without column metrics is read instead);
* the Bronze writer's counters, which ``python -m streaming.bronze_writer`` writes after every commit to
  ``<state dir>/bronze_writer_status.json``;
* alerts: failed runs (rows of quality.alerts, appended by the run-failure sensor), failed or warning checks (rows
  of quality.check_results) and stale layers (newest data older than ``CRYPTOLAKE_STALE_AFTER_S``), in one shape.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError
from pyiceberg.table import Table as IcebergTable

from cryptolake.settings import Settings
from cryptolake.tables import BRONZE_TRADES, GOLD_OHLCV_1M, SILVER_OHLCV_1M
from cryptolake.utc import as_utc

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
WRITER_STATUS_FILE: Final = "bronze_writer_status.json"

AlertKind = Literal["run_failure", "check_failed", "check_warning", "stale"]
ALERT_KINDS: Final[tuple[str, ...]] = ("run_failure", "check_failed", "check_warning", "stale")
#: Outcomes of quality.check_results that raise an alert: failed, and error (the check could not be evaluated).
ALERTING_OUTCOMES: Final = ("failed", "error")


@dataclass(frozen=True)
class Layer:
    """A layer's main table and the column holding its data time."""

    layer: str
    table: str
    time_column: str


LAYERS: Final[tuple[Layer, ...]] = (
    Layer("bronze", BRONZE_TRADES.identifier, "trade_time"),
    Layer("silver", SILVER_OHLCV_1M.identifier, "minute"),
    Layer("gold", GOLD_OHLCV_1M, "open_time"),
)


@dataclass(frozen=True)
class LayerFreshness:
    layer: Layer
    newest: datetime | None  # None: the table is missing or has no rows
    lag_seconds: float | None
    stale: bool


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    return EPOCH + timedelta(microseconds=int(value))


def newest_time(table: IcebergTable, column: str, snapshot_id: int | None = None) -> datetime | None:
    """The greatest value of ``column`` at the snapshot (default: the current one): the largest upper bound of the
    column over the live data files, or, when a file has no bound, the column's maximum read from the data."""
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
    if snapshot is None:
        return None
    field = table.schema().find_field(column)
    newest: datetime | None = None
    for task in table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=(column,)).plan_files():
        bound = (task.file.upper_bounds or {}).get(field.field_id)
        if bound is None:  # written without column metrics: read the column instead
            values = table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=(column,)).to_arrow()
            maximum = pc.max(values.column(column)).as_py() if values.num_rows else None
            return _as_datetime(maximum) if maximum is not None else None
        value = _as_datetime(from_bytes(field.field_type, bound))
        newest = value if newest is None or value > newest else newest
    return newest


def freshness_of(layer: Layer, newest: datetime | None, now: datetime, stale_after_s: float) -> LayerFreshness:
    lag = (now - newest).total_seconds() if newest is not None else None
    return LayerFreshness(layer, newest, lag, lag is not None and lag > stale_after_s)


def layer_freshness(catalog: Catalog, now: datetime, stale_after_s: float) -> list[LayerFreshness]:
    """Every layer's freshness at the tables' current snapshots (a missing table reads as no data)."""
    found = []
    for layer in LAYERS:
        try:
            newest = newest_time(catalog.load_table(layer.table), layer.time_column)
        except (NoSuchTableError, NoSuchNamespaceError):
            newest = None
        found.append(freshness_of(layer, newest, now, stale_after_s))
    return found


def writer_status_path(settings: Settings) -> Path:
    """Where the Bronze writer writes its counters (``streaming/bronze_writer/__main__.py``)."""
    return settings.state_dir / WRITER_STATUS_FILE


def read_writer_status(path: Path) -> tuple[dict[str, Any] | None, datetime | None]:
    """The Bronze writer's counters and the time the file was written; ``(None, None)`` when it is missing or
    unreadable (the writer has not committed a batch on this machine, or is writing it right now)."""
    try:
        written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    return (status, written) if isinstance(status, dict) else (None, None)


# --- alerts -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert, whatever raised it. ``subject``: the job (run_failure), the asset (checks) or the table (stale)."""

    alert_id: str
    kind: str
    raised_at: datetime
    severity: str
    subject: str
    message: str
    run_id: str | None = None
    partition_key: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object of the alert (the API's row and the webhook's body)."""
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "raised_at": as_utc(self.raised_at).isoformat().replace("+00:00", "Z"),
            "severity": self.severity,
            "subject": self.subject,
            "message": self.message,
            "run_id": self.run_id,
            "partition_key": self.partition_key,
        }


def _digest(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


def run_failure_alert(row: Mapping[str, Any]) -> Alert:
    """A row of quality.alerts as an alert."""
    return Alert(
        alert_id=str(row["alert_id"]), kind="run_failure", raised_at=_as_datetime(row["raised_at"]), severity="ERROR",
        subject=str(row["job_name"]), message=str(row["message"]), run_id=row.get("run_id"),
        partition_key=row.get("partition_key"),
    )  # fmt: skip


def check_alert(row: Mapping[str, Any]) -> Alert | None:
    """A row of quality.check_results as an alert: a failed (or unevaluable) check is ``check_failed`` when its
    severity is ERROR and ``check_warning`` when it is WARN; a passed check is no alert (None)."""
    if row.get("outcome") not in ALERTING_OUTCOMES:
        return None
    severity = str(row.get("severity") or "ERROR")
    failed = f"; failed: {row['failed_checks']}" if row.get("failed_checks") else ""
    where = f" [{row['partition_key']}]" if row.get("partition_key") else ""
    identity = _digest(row["run_id"], row["check_name"], row["asset_key"], row.get("partition_key"), row["checked_at"])
    return Alert(
        alert_id=f"check-{identity}",
        kind="check_warning" if severity == "WARN" else "check_failed", raised_at=_as_datetime(row["checked_at"]),
        severity=severity, subject=str(row["asset_key"]),
        message=f"{row['check_name']} on {row['asset_key']}{where}: {row['outcome']}{failed}",
        run_id=row.get("run_id"), partition_key=row.get("partition_key"),
    )  # fmt: skip


def stale_alert(freshness: LayerFreshness, stale_after_s: float) -> Alert | None:
    """A stale layer as an alert, raised when its newest data became older than ``stale_after_s``; None when it
    is not stale (a table without rows is not stale: nothing has arrived yet to grow old)."""
    if not freshness.stale or freshness.newest is None:
        return None
    became = freshness.newest + timedelta(seconds=stale_after_s)
    lag = freshness.lag_seconds or 0.0
    return Alert(
        alert_id=f"stale-{freshness.layer.layer}-{_digest(freshness.newest.isoformat())}", kind="stale",
        raised_at=became, severity="WARN", subject=freshness.layer.table,
        message=f"{freshness.layer.layer}: the newest {freshness.layer.time_column} in {freshness.layer.table} is "
        f"{freshness.newest.isoformat().replace('+00:00', 'Z')}, {lag:.0f} s ago (stale after {stale_after_s:.0f} s)",
    )  # fmt: skip
