"""The alerts domain's sensors on a real Dagster instance (SQLite storage in a temporary directory) and a real
lakehouse: runs that fail and succeed are executed, the sensors are evaluated on their events, and what they wrote
is read back from quality.alerts / quality.asset_runs with pyiceberg, what they posted from a local HTTP server.

(No ``from __future__ import annotations`` here: the module defines Dagster assets.)
"""

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.pipeline_status import run_failure_alert
from cryptolake.settings import Settings
from cryptolake.tables import QUALITY_ALERTS, QUALITY_ASSET_RUNS, SILVER_OHLCV_1M
from cryptolake_dagster.defs.alerts.sensors import quality_alerts_webhook, run_failure_alerts, run_success_asset_runs
from cryptolake_dagster.defs.alerts.webhook import AlertingResource
from cryptolake_dagster.quality.results import CheckRecord, append_check_results
from cryptolake_dagster.resources import IcebergCatalogResource

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")
FAILED_DAY = "2024-05-01"
PLANTED_ERROR = "planted failure: the upstream file is missing"


@dg.asset(key=["alerts_test", "daily"], partitions_def=DAYS)
def daily_asset() -> None:
    return None


@dg.asset(key=["alerts_test", "plain"])
def plain_asset() -> None:
    return None


@dg.asset(key=["alerts_test", "breaks"], partitions_def=DAYS, deps=[daily_asset])
def breaking_asset() -> None:
    raise RuntimeError(PLANTED_ERROR)


# --- helpers shared with the serving tests of /api/v1/pipeline/* -----------------------------------------------


class Webhook:
    """A local HTTP server that records each POSTed JSON body and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> "Webhook":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:  # nobody listens there once it is closed
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/alerts"


def temp_lakehouse(state_dir: Path, **overrides: Any) -> tuple[Settings, Catalog]:
    settings = Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None, catalog_name="lake",
                        **overrides)  # fmt: skip
    return settings, bootstrap_lakehouse(settings)


@contextmanager
def temp_instance(directory: Path) -> Iterator[dg.DagsterInstance]:
    directory.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(directory)) as instance:
        yield instance


def resources(settings: Settings, webhook_url: str | None, stale_after_s: float = 1800.0) -> dict[str, Any]:
    return {
        "iceberg": IcebergCatalogResource.from_settings(settings),
        "alerting": AlertingResource(webhook_url=webhook_url, webhook_timeout_s=2.0, stale_after_s=stale_after_s),
    }


def run_failing(instance: dg.DagsterInstance) -> str:
    """A run of FAILED_DAY that materializes alerts_test/daily, then fails in alerts_test/breaks."""
    result = dg.materialize([daily_asset, breaking_asset], instance=instance, partition_key=FAILED_DAY,
                            raise_on_error=False)  # fmt: skip
    assert not result.success
    return result.run_id


def run_succeeding(instance: dg.DagsterInstance, day: str) -> str:
    result = dg.materialize([daily_asset], instance=instance, partition_key=day)
    assert result.success
    return result.run_id


def evaluate_failure_sensor(instance: dg.DagsterInstance, run_id: str, settings: Settings, url: str | None) -> None:
    """Evaluate run_failure_alerts on the run's RUN_FAILURE event, as the daemon does."""
    run = instance.get_run_by_id(run_id)
    event = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alerts.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources=resources(settings, url),
    ).for_run_failure()  # fmt: skip
    run_failure_alerts(context)


def evaluate_success_sensor(instance: dg.DagsterInstance, run_id: str, settings: Settings) -> None:
    run = instance.get_run_by_id(run_id)
    event = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[-1].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name=run_success_asset_runs.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
        resources=resources(settings, None),
    )  # fmt: skip
    run_success_asset_runs(context)


def rows_of(catalog: Catalog, identifier: str) -> list[dict[str, Any]]:
    return catalog.load_table(identifier).scan().to_arrow().to_pylist()


def minute_bar(minute: datetime) -> dict[str, Any]:
    """A silver.ohlcv_1m row (only its time matters to freshness)."""
    price = Decimal("100.5")
    return {
        "exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "minute": minute, "open": price, "high": price,
        "low": price, "close": price, "volume": Decimal(1), "quote_volume": price, "trade_count": 1, "vwap": price,
        "buy_volume": Decimal(1), "sell_volume": Decimal(0), "first_agg_trade_id": 1, "last_agg_trade_id": 1,
        "built_at": minute,
    }  # fmt: skip


def append(catalog: Catalog, identifier: str, rows: list[dict[str, Any]]) -> None:
    table = catalog.load_table(identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def check(name: str, outcome: str, severity: str, at: datetime, run_id: str = "run-check") -> CheckRecord:
    return CheckRecord(
        check_name=name, asset_key="silver/ohlcv_1m", partition_key=FAILED_DAY, outcome=outcome, severity=severity,
        blocking=severity == "ERROR", check_type="soda", run_id=run_id,
        failed_checks=() if outcome == "passed" else (f"{name}_part",), checked_at=at,
    )  # fmt: skip


# --- the tests ------------------------------------------------------------------------------------------------


def test_run_failure_sensor_records_the_failed_run_and_posts_it(tmp_path: Path) -> None:
    settings, catalog = temp_lakehouse(tmp_path / "state")
    with temp_instance(tmp_path / "dagster") as instance, Webhook() as hook:
        run_id = run_failing(instance)
        evaluate_failure_sensor(instance, run_id, settings, hook.url)
        record = instance.get_run_record_by_id(run_id)

    [row] = rows_of(catalog, QUALITY_ALERTS.identifier)
    assert row["alert_id"] == row["run_id"] == run_id and row["kind"] == "run_failure"
    assert row["job_name"] == record.dagster_run.job_name
    assert row["partition_key"] == FAILED_DAY
    assert row["message"].endswith(f"| alerts_test__breaks: RuntimeError: {PLANTED_ERROR}")
    assert row["failed_steps"] == "alerts_test__breaks"
    assert json.loads(row["tags"])["dagster/partition"] == FAILED_DAY
    assert abs(row["raised_at"].timestamp() - record.end_time) < 1e-3
    # The webhook received exactly that alert, as JSON.
    assert hook.bodies == [run_failure_alert(row).payload()]
    [body] = hook.bodies
    assert body["kind"] == "run_failure" and body["run_id"] == run_id and body["severity"] == "ERROR"
    assert body["subject"] == record.dagster_run.job_name and PLANTED_ERROR in body["message"]
    # What the run materialized before failing is its asset's last run.
    [asset_run] = rows_of(catalog, QUALITY_ASSET_RUNS.identifier)
    assert asset_run["asset_key"] == "alerts_test/daily" and asset_run["run_status"] == "FAILURE"
    assert asset_run["run_id"] == run_id and asset_run["partition_key"] == FAILED_DAY and asset_run["partitions"] == 1


def test_the_sensors_see_runs_through_the_instance_as_the_daemon_does(tmp_path: Path) -> None:
    """Ticks as the daemon evaluates them (cursor over the instance's run status events): the first tick starts
    at the newest event, later ticks see each new run once, in-process runs (``cryptolake backfill``) included."""
    settings, catalog = temp_lakehouse(tmp_path / "state")
    with temp_instance(tmp_path / "dagster") as instance, Webhook() as hook:

        def tick(sensor: Any, cursor: str | None) -> str | None:
            context = dg.build_sensor_context(instance=instance, resources=resources(settings, hook.url), cursor=cursor)
            return sensor.evaluate_tick(context).cursor

        old_failure = run_failing(instance)  # before the sensors started: not reported
        failures, successes = tick(run_failure_alerts, None), tick(run_success_asset_runs, None)
        failed, succeeded = run_failing(instance), run_succeeding(instance, "2024-05-04")
        failures, successes = tick(run_failure_alerts, failures), tick(run_success_asset_runs, successes)
        tick(run_failure_alerts, failures), tick(run_success_asset_runs, successes)  # nothing new
    assert [row["run_id"] for row in rows_of(catalog, QUALITY_ALERTS.identifier)] == [failed] != [old_failure]
    assert [body["run_id"] for body in hook.bodies] == [failed]
    runs = {(r["run_id"], r["run_status"]) for r in rows_of(catalog, QUALITY_ASSET_RUNS.identifier)}
    assert runs == {(failed, "FAILURE"), (succeeded, "SUCCESS")}


@pytest.mark.parametrize("answer", ["closed port", "500"])
def test_a_failing_webhook_never_breaks_the_sensor(answer: str, tmp_path: Path) -> None:
    settings, catalog = temp_lakehouse(tmp_path / "state")
    with temp_instance(tmp_path / "dagster") as instance, Webhook(status=500) as hook:
        run_id = run_failing(instance)
        evaluate_failure_sensor(instance, run_id, settings, closed_port_url() if answer == "closed port" else hook.url)
    assert [row["run_id"] for row in rows_of(catalog, QUALITY_ALERTS.identifier)] == [run_id]
    assert len(hook.bodies) == (1 if answer == "500" else 0)


def test_run_success_sensor_records_each_run_of_each_asset(tmp_path: Path) -> None:
    settings, catalog = temp_lakehouse(tmp_path / "state")
    with temp_instance(tmp_path / "dagster") as instance:
        first, second = run_succeeding(instance, "2024-05-02"), run_succeeding(instance, "2024-05-03")
        plain = dg.materialize([plain_asset], instance=instance).run_id
        for run_id in (first, second, plain):
            evaluate_success_sensor(instance, run_id, settings)
        latest = {
            key: instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
            for key in ("alerts_test/daily", "alerts_test/plain")
        }
    rows = sorted(rows_of(catalog, QUALITY_ASSET_RUNS.identifier), key=lambda r: r["materialized_at"])
    assert [(r["asset_key"], r["run_id"], r["partition_key"], r["partitions"], r["run_status"]) for r in rows] == [
        ("alerts_test/daily", first, "2024-05-02", 1, "SUCCESS"),
        ("alerts_test/daily", second, "2024-05-03", 1, "SUCCESS"),
        ("alerts_test/plain", plain, None, 0, "SUCCESS"),
    ]
    for key, event in latest.items():  # the newest row per asset is Dagster's own latest materialization
        newest = max((r for r in rows if r["asset_key"] == key), key=lambda r: r["materialized_at"])
        assert newest["run_id"] == event.run_id
        assert abs(newest["materialized_at"].timestamp() - event.timestamp) < 1e-3


def test_quality_alerts_webhook_posts_new_failed_checks_and_newly_stale_layers(tmp_path: Path) -> None:
    settings, catalog = temp_lakehouse(tmp_path / "state")
    now = datetime.now(UTC)
    append(catalog, SILVER_OHLCV_1M.identifier, [minute_bar(now - timedelta(hours=2))])  # stale after 1 h
    append_check_results(catalog, [check("old_failure", "failed", "ERROR", now - timedelta(hours=3))])

    def evaluate(instance: dg.DagsterInstance, cursor: str | None, url: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor,
                                          resources=resources(settings, url, stale_after_s=3600))  # fmt: skip
        return quality_alerts_webhook(context)

    with temp_instance(tmp_path / "dagster") as instance, Webhook() as hook:
        skipped = evaluate(instance, None, None)
        assert skipped.skip_reason is not None and "CRYPTOLAKE_ALERT_WEBHOOK_URL" in skipped.skip_reason.skip_message
        first = evaluate(instance, None, hook.url)  # no history posted; the layer stale now is
        assert [(b["kind"], b["subject"]) for b in hook.bodies] == [("stale", SILVER_OHLCV_1M.identifier)]
        assert hook.bodies[0]["raised_at"].startswith((now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
        append_check_results(catalog, [
            check("soda_fails", "failed", "ERROR", now - timedelta(minutes=2)),
            check("anomaly_warns", "failed", "WARN", now - timedelta(minutes=1)),
            check("cannot_run", "error", "ERROR", now),
            check("fine", "passed", "ERROR", now),
        ])  # fmt: skip
        second = evaluate(instance, first.cursor, hook.url)
        posted = hook.bodies[1:]
        assert [(b["kind"], b["message"].split(" ")[0]) for b in posted] == [
            ("check_failed", "soda_fails"), ("check_warning", "anomaly_warns"), ("check_failed", "cannot_run"),
        ]  # fmt: skip
        assert posted[0]["subject"] == "silver/ohlcv_1m" and posted[0]["partition_key"] == FAILED_DAY
        assert "soda_fails_part" in posted[0]["message"]
        third = evaluate(instance, second.cursor, hook.url)
        assert len(hook.bodies) == 4  # nothing new, and the layer is still the same stale one
        assert json.loads(third.cursor)["stale"] == ["silver"]
        # A webhook that is down: the sensor still advances, nothing raised.
        append_check_results(catalog, [check("later", "failed", "ERROR", datetime.now(UTC))])
        down = evaluate(instance, third.cursor, closed_port_url())
        assert json.loads(down.cursor)["checked_at"] > json.loads(third.cursor)["checked_at"]
