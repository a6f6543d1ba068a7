"""Pipeline status: ``pipeline/freshness`` (newest data and lag per layer, the Bronze writer's counters, the last run
of each asset) and ``pipeline/alerts`` (failed runs, failed and warning checks, stale layers).

Serving may not import Dagster (``cryptolake_dagster_tests/test_layering.py``: ``serving`` knows only the core), and
reading the Dagster instance's SQL storage from here would tie the API to Dagster's private schema. So the
orchestrator writes what the API needs into Iceberg: the alerts domain's sensors (``cryptolake_dagster/defs/alerts/``)
append each failed run to quality.alerts and each finished run's materializations to quality.asset_runs, read here
like every other table (per snapshot, through the Lake's cache). The freshness and alert rules are the core's
(:mod:`cryptolake.pipeline_status`), shared with the sensor that posts the same alerts to the webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Query, Response

from cryptolake.pipeline_status import (
    ALERTING_OUTCOMES,
    LAYERS,
    WRITER_STATUS_FILE,
    Alert,
    AlertKind,
    Layer,
    LayerFreshness,
    check_alert,
    freshness_of,
    newest_time,
    read_writer_status,
    run_failure_alert,
    stale_alert,
    writer_status_path,
)
from cryptolake.tables import QUALITY_ALERTS, QUALITY_ASSET_RUNS, QUALITY_CHECK_RESULTS
from cryptolake.utc import as_utc
from serving.api.deps import LakeDep, SettingsDep
from serving.api.encode import dumps
from serving.api.errors import DATA_ERRORS, invalid_parameter
from serving.api.lake import Lake, TableMissingError, View, from_micros
from serving.api.params import StrictTime
from serving.api.responses import JSON
from serving.api.routers.bars import notice, served
from serving.api.schemas import AlertsPublic, FreshnessPublic

ASSET_RUN_FIELDS: Final = ("asset_key", "run_id", "job_name", "run_status", "partition_key", "partitions",
                           "materialized_at")  # fmt: skip

router = APIRouter(prefix="/pipeline", tags=["pipeline"])


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else None


def _newest(lake: Lake, layer: Layer) -> tuple[View, datetime | None]:
    """The layer table's newest data time at its current snapshot (computed once per snapshot)."""
    try:
        table, snap = lake.snapshot(layer.table)
    except TableMissingError:
        return View(layer.table, None, None, exists=False), None
    if snap is None:
        return View(layer.table, None, None), None
    view = View(layer.table, snap.snapshot_id, from_micros(snap.timestamp_ms * 1000))
    key = (layer.table, snap.snapshot_id, "newest", layer.time_column)
    boxed = lake.loads.get_or_load(key, lambda: (newest_time(table, layer.time_column, snap.snapshot_id),))
    return view, boxed[0]


def layer_status(lake: Lake, now: datetime, stale_after_s: float) -> list[tuple[View, LayerFreshness]]:
    found = []
    for layer in LAYERS:
        view, newest = _newest(lake, layer)
        found.append((view, freshness_of(layer, newest, now, stale_after_s)))
    return found


def _tables_notice(*views: View) -> str | None:
    """Which tables are not built yet, or have no rows yet."""
    missing = [v for v in views if not v.exists]
    empty = [v.identifier for v in views if v.exists and v.snapshot_id is None]
    parts = [notice(*missing)] if missing else []
    if empty:
        parts.append(f"{', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no rows yet")
    return "; ".join(p for p in parts if p) or None


def _last_runs(table: pa.Table) -> list[dict[str, Any]]:
    """Per asset key its row with the newest materialized_at, sorted by asset key."""
    if table.num_rows == 0:
        return []
    ordered = table.sort_by([("asset_key", "ascending"), ("materialized_at", "descending"), ("run_id", "ascending")])
    keys = ordered.column("asset_key").to_pylist()
    newest = ordered.take([i for i, key in enumerate(keys) if i == 0 or keys[i - 1] != key])
    rows = newest.select(list(ASSET_RUN_FIELDS)).to_pylist()
    for row in rows:
        row["materialized_at"] = _iso(row["materialized_at"])
    return rows


@router.get("/freshness", response_model=FreshnessPublic, responses=DATA_ERRORS,
            summary="Newest data per layer, the Bronze writer's counters, the last run of each asset")  # fmt: skip
def freshness(lake: LakeDep, settings: SettingsDep) -> Response:
    """Per layer (bronze.trades, silver.ohlcv_1m, gold.fct_ohlcv_1m) the newest data time, read from the snapshot's
    file metadata, and its lag behind now (`stale` beyond `CRYPTOLAKE_STALE_AFTER_S`); the Bronze writer's counters
    from its status file; per asset the last finished run that materialized it (quality.asset_runs, written by the
    Dagster alerts sensors)."""
    now = datetime.now(UTC)
    layers = layer_status(lake, now, settings.stale_after_s)
    status, written = read_writer_status(writer_status_path(settings))
    writer_notice = None
    if status is None:
        writer_notice = (f"no Bronze writer status yet ({WRITER_STATUS_FILE} in the state directory): the writer "
                         "writes it after each commit; start it with `python -m streaming.bronze_writer` (or "
                         "`cryptolake run`)")  # fmt: skip
    runs_view, parts = lake.load(QUALITY_ASSET_RUNS.identifier)
    assets = _last_runs(parts.data.get((), pa.table({})))
    messages = [_tables_notice(*(view for view, _ in layers))]
    if not assets:
        messages.append(_tables_notice(runs_view) if not runs_view.exists else None)
        messages.append(f"no asset runs recorded yet: {QUALITY_ASSET_RUNS.identifier} gets a row per asset when a "
                        "Dagster run finishes (the alerts sensors of `cryptolake run`)")  # fmt: skip
    body = {
        "checked_at": _iso(now), "stale_after_s": settings.stale_after_s,
        "layers": [
            {"layer": f.layer.layer, "table": f.layer.table, "time_column": f.layer.time_column,
             "newest": _iso(f.newest), "lag_seconds": f.lag_seconds, "stale": f.stale,
             "snapshot_id": view.snapshot_id, "committed_at": _iso(view.committed_at)}
            for view, f in layers
        ],
        "bronze_writer": {**status, "updated_at": _iso(written)} if status is not None else None,
        "bronze_writer_notice": writer_notice, "assets": assets,
        "served_from": served(*(view for view, _ in layers), runs_view),
        "notice": "; ".join(m for m in messages if m) or None,
    }  # fmt: skip
    return Response(dumps(body), media_type=JSON)


def _since_filter(table: pa.Table, column: str, since: datetime | None) -> pa.Table:
    if since is None or table.num_rows == 0:
        return table
    return table.filter(pc.greater_equal(table.column(column), pa.scalar(since, table.schema.field(column).type)))


@router.get("/alerts", response_model=AlertsPublic, responses=DATA_ERRORS,
            summary="Failed runs, failed and warning checks, stale layers")  # fmt: skip
def alerts(
    lake: LakeDep,
    settings: SettingsDep,
    since: Annotated[
        StrictTime | None, Query(description="Only alerts raised at or after this time (ISO-8601; UTC without zone)")
    ] = None,
    kind: Annotated[AlertKind | None, Query(description="Only this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many (the newest)")] = 100,
) -> Response:
    """Newest first: failed Dagster runs (quality.alerts), failed (ERROR) and warning (WARN) checks, including
    checks that could not be evaluated (quality.check_results), and layers whose newest data is older than
    `CRYPTOLAKE_STALE_AFTER_S` (raised when they became stale)."""
    try:
        since = as_utc(since) if since is not None else None
    except OverflowError as exc:
        raise invalid_parameter("since", "times must be within years 1..9999 in UTC", kind="range") from exc
    found: list[Alert] = []
    alerts_view, parts = lake.load(QUALITY_ALERTS.identifier)
    if kind in (None, "run_failure"):
        table = _since_filter(parts.data.get((), pa.table({})), "raised_at", since)
        found.extend(run_failure_alert(row) for row in table.to_pylist())
    checks_view, parts = lake.load(QUALITY_CHECK_RESULTS.identifier)
    if kind in (None, "check_failed", "check_warning"):
        table = _since_filter(parts.data.get((), pa.table({})), "checked_at", since)
        if table.num_rows:
            table = table.filter(pc.is_in(table.column("outcome"), pa.array(ALERTING_OUTCOMES)))
        found.extend(alert for alert in map(check_alert, table.to_pylist()) if alert is not None)
    layers = layer_status(lake, datetime.now(UTC), settings.stale_after_s)
    if kind in (None, "stale"):
        found.extend(alert for _, f in layers if (alert := stale_alert(f, settings.stale_after_s)) is not None)
    unique = {alert.alert_id: alert for alert in reversed(found)}  # a re-recorded run failure counts once
    chosen = sorted(
        (a for a in unique.values() if (kind is None or a.kind == kind) and (since is None or a.raised_at >= since)),
        key=lambda a: (-a.raised_at.timestamp(), a.alert_id),
    )[:limit]
    data = [alert.payload() for alert in chosen]
    message = _tables_notice(*(v for v in (alerts_view, checks_view) if not v.exists))
    if not data:
        empty = (f"no alerts{f' since {_iso(since)}' if since else ''}: no failed run recorded, no failed or "
                 f"warning check, no layer stale beyond {settings.stale_after_s:.0f} s")  # fmt: skip
        message = f"{message}; {empty}" if message else empty
    return Response(dumps({"count": len(data), "served_from": served(alerts_view, checks_view, *(v for v, _ in layers)),
                           "notice": message, "data": data}), media_type=JSON)  # fmt: skip
