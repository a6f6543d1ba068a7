"""``/api/v1/pipeline/freshness`` and ``/api/v1/pipeline/alerts`` over HTTP, on a lakehouse whose quality.alerts and
quality.asset_runs were written by the real alerts sensors from runs on a real Dagster instance; every value is
recomputed here from the tables (pyiceberg scans), the instance and the Bronze writer's status file. And the
dashboard's quality page (``AppTest``) on the same API."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import requests
from streamlit.testing.v1 import AppTest

from cryptolake.broker import TRADES_TOPIC
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.pipeline_status import LAYERS, WRITER_STATUS_FILE
from cryptolake.settings import Settings, get_settings
from cryptolake.tables import BRONZE_TRADES, GOLD_OHLCV_1M, QUALITY_CHECK_RESULTS, SILVER_OHLCV_1M
from cryptolake_dagster.quality.results import append_check_results
from cryptolake_dagster_tests.orchestration.test_alert_sensors import (
    FAILED_DAY,
    append,
    check,
    evaluate_failure_sensor,
    evaluate_success_sensor,
    minute_bar,
    run_failing,
    run_succeeding,
    temp_instance,
    temp_lakehouse,
)
from streaming.bronze_writer.job import WriterCounters

if TYPE_CHECKING:
    from conftest import ApiServer

TIMEOUT = 10
STALE_AFTER_S = 3600.0
QUALITY_PAGE = Path(__file__).resolve().parents[2] / "serving" / "dashboard" / "app_pages" / "quality.py"


@dataclass(frozen=True)
class StatusLake:
    server: ApiServer
    settings: Settings
    failed_run: str
    failed_job: str
    failed_at: datetime
    latest: dict[str, dict[str, Any]]  # asset key -> Dagster's own latest materialization (run, partition, time)
    writer_status: dict[str, Any]

    @property
    def base_url(self) -> str:
        return self.server.base_url


def bronze_trade(agg_id: int, trade_time: datetime) -> dict[str, Any]:
    price, quantity = Decimal("64000.5"), Decimal("0.01")
    return {
        "schema_version": 1, "exchange": "binance", "market": "spot", "symbol": "BTCUSDT", "base_asset": "BTC",
        "quote_asset": "USDT", "coin_id": "bitcoin", "agg_trade_id": agg_id, "first_trade_id": agg_id,
        "last_trade_id": agg_id, "price": price, "quantity": quantity, "quote_quantity": price * quantity,
        "side": "buy", "is_buyer_maker": False, "trade_time": trade_time, "event_time": trade_time,
        "ingest_time": trade_time, "source": "ws", "kafka_topic": TRADES_TOPIC, "kafka_partition": 0,
        "kafka_offset": agg_id, "bronze_written_at": trade_time + timedelta(seconds=1),
    }  # fmt: skip


@pytest.fixture(scope="module")
def status_lake(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> StatusLake:
    """Bronze trades up to 90 s ago (two commits), Silver bars up to 2 h ago (stale after 1 h), Gold 1m bars up to
    5 min ago, check results of every outcome, a failed and two successful Dagster runs seen by the sensors, and a
    Bronze writer status file."""
    work = tmp_path_factory.mktemp("pipeline-status")
    settings, catalog = temp_lakehouse(work / "state", stale_after_s=STALE_AFTER_S)
    now = datetime.now(UTC)
    append(catalog, BRONZE_TRADES.identifier, [bronze_trade(i, now - timedelta(minutes=30 - i)) for i in range(10)])
    append(catalog, BRONZE_TRADES.identifier, [bronze_trade(100, now - timedelta(seconds=90)),
                                               bronze_trade(101, now - timedelta(days=2))])  # fmt: skip
    append(catalog, SILVER_OHLCV_1M.identifier, [minute_bar(now - timedelta(hours=2, minutes=i)) for i in range(5)])
    gold = pa.schema([pa.field("symbol", pa.string()), pa.field("open_time", pa.timestamp("us", tz="UTC")),
                      pa.field("close", pa.decimal128(28, 8))])  # fmt: skip
    catalog.create_table(GOLD_OHLCV_1M, schema=gold).append(pa.Table.from_pylist(
        [{"symbol": "BTCUSDT", "open_time": (now - timedelta(minutes=5 + i)).replace(second=0, microsecond=0),
          "close": Decimal("1.5")} for i in range(3)], schema=gold))  # fmt: skip
    append_check_results(catalog, [
        check("soda_silver_ohlcv_1m", "passed", "ERROR", now - timedelta(hours=5)),
        check("soda_gold_fct_ohlcv_1h", "failed", "ERROR", now - timedelta(hours=4), run_id="run-a"),
        check("row_count_anomaly_silver_trades", "failed", "WARN", now - timedelta(hours=3), run_id="run-b"),
        check("soda_gold_dim_coin", "error", "ERROR", now - timedelta(minutes=50), run_id="run-c"),
    ])  # fmt: skip
    with temp_instance(work / "dagster") as instance:
        failed = run_failing(instance)
        evaluate_failure_sensor(instance, failed, settings, None)
        for day in ("2024-05-02", "2024-05-03"):
            evaluate_success_sensor(instance, run_succeeding(instance, day), settings)
        record = instance.get_run_record_by_id(failed)
        latest = {}
        for key in ("alerts_test/daily",):
            event = instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
            latest[key] = {"run_id": event.run_id, "partition": event.asset_materialization.partition,
                           "at": datetime.fromtimestamp(event.timestamp, UTC)}  # fmt: skip
    counters = WriterCounters(batches=3, rows=1_234, rejected=2, rejected_reasons={"bad_price": 2},
                              last_commit_at=now.timestamp(), consumed=1_236, last_committed_offsets={0: 1_236},
                              freshness_s=1.5)  # fmt: skip
    status = {**asdict(counters), "rows_per_second": counters.rows_per_second, "topic": TRADES_TOPIC}
    (settings.state_dir / WRITER_STATUS_FILE).write_text(json.dumps(status, indent=2, default=str))
    return StatusLake(serve(settings), settings, failed, record.dagster_run.job_name,
                      datetime.fromtimestamp(record.end_time, UTC), latest, json.loads(json.dumps(status)))  # fmt: skip


def get(server: Any, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.base_url}{path}", params=params, timeout=TIMEOUT)


def parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def newest_by_scan(settings: Settings, identifier: str, column: str) -> datetime | None:
    """The column's maximum over the rows (a data scan, not the file metadata the API reads)."""
    values = get_catalog(settings).load_table(identifier).scan(selected_fields=(column,)).to_arrow().column(column)
    return pc.max(values).as_py() if len(values) else None


def test_freshness_equals_a_recomputation(status_lake: StatusLake) -> None:
    body = get(status_lake, "/api/v1/pipeline/freshness").json()
    checked_at = parse(body["checked_at"])
    assert body["stale_after_s"] == STALE_AFTER_S
    assert [layer["layer"] for layer in body["layers"]] == ["bronze", "silver", "gold"]
    catalog = get_catalog(status_lake.settings)
    for layer, spec in zip(body["layers"], LAYERS, strict=True):
        assert (layer["table"], layer["time_column"]) == (spec.table, spec.time_column)
        newest = newest_by_scan(status_lake.settings, spec.table, spec.time_column)
        assert parse(layer["newest"]) == newest, layer
        assert layer["lag_seconds"] == pytest.approx((checked_at - newest).total_seconds(), abs=1e-3)
        assert layer["stale"] is ((checked_at - newest).total_seconds() > STALE_AFTER_S)
        assert layer["snapshot_id"] == catalog.load_table(spec.table).current_snapshot().snapshot_id
    assert [layer["stale"] for layer in body["layers"]] == [False, True, False]
    # The Bronze writer's counters, as the writer wrote them, and when.
    writer = body["bronze_writer"]
    path = status_lake.settings.state_dir / WRITER_STATUS_FILE
    assert {k: v for k, v in writer.items() if k != "updated_at"} == status_lake.writer_status
    assert parse(writer["updated_at"]) == datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert body["bronze_writer_notice"] is None
    # The last run of each asset: Dagster's own latest materialization, and the failed run's one asset.
    assets = {a["asset_key"]: a for a in body["assets"]}
    assert set(assets) == {"alerts_test/daily"}
    daily, expected = assets["alerts_test/daily"], status_lake.latest["alerts_test/daily"]
    assert (daily["run_id"], daily["partition_key"], daily["partitions"], daily["run_status"]) == (
        expected["run_id"], expected["partition"], 1, "SUCCESS")  # fmt: skip
    assert abs((parse(daily["materialized_at"]) - expected["at"]).total_seconds()) < 1e-3
    assert body["notice"] is None


def test_freshness_without_data(empty_api: ApiServer, bare_api: ApiServer) -> None:
    for server in (empty_api, bare_api):
        body = get(server, "/api/v1/pipeline/freshness").json()
        assert [(x["newest"], x["lag_seconds"], x["stale"]) for x in body["layers"]] == [(None, None, False)] * 3
        assert body["bronze_writer"] is None and WRITER_STATUS_FILE in body["bronze_writer_notice"]
        assert body["assets"] == [] and "quality.asset_runs" in body["notice"]
    assert "not built yet" in get(bare_api, "/api/v1/pipeline/freshness").json()["notice"]


def expected_alerts(lake: StatusLake) -> list[tuple[str, datetime, str, str | None]]:
    """(kind, raised_at, subject, run_id), newest first, recomputed from the tables and the run."""
    found = [("run_failure", lake.failed_at, lake.failed_job, lake.failed_run)]
    results = get_catalog(lake.settings).load_table(QUALITY_CHECK_RESULTS.identifier).scan().to_arrow().to_pylist()
    for row in results:
        if row["outcome"] != "passed":
            kind = "check_warning" if row["severity"] == "WARN" else "check_failed"
            found.append((kind, row["checked_at"], row["asset_key"], row["run_id"]))
    silver = newest_by_scan(lake.settings, SILVER_OHLCV_1M.identifier, "minute")
    found.append(("stale", silver + timedelta(seconds=STALE_AFTER_S), SILVER_OHLCV_1M.identifier, None))
    return sorted(found, key=lambda a: a[1], reverse=True)


def _tuples(body: dict[str, Any]) -> list[tuple[str, datetime, str, str | None]]:
    return [(a["kind"], parse(a["raised_at"]), a["subject"], a["run_id"]) for a in body["data"]]


def _close(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert [(k, s, r) for k, _, s, r in got] == [(k, s, r) for k, _, s, r in want]
    for (_, a, _, _), (_, b, _, _) in zip(got, want, strict=True):
        assert abs((a - b).total_seconds()) < 1e-3


def test_alerts_equal_a_recomputation_newest_first(status_lake: StatusLake) -> None:
    body = get(status_lake, "/api/v1/pipeline/alerts").json()
    want = expected_alerts(status_lake)
    assert body["count"] == len(want) == 5 and body["notice"] is None
    _close(_tuples(body), want)
    failure = next(a for a in body["data"] if a["kind"] == "run_failure")
    assert failure["alert_id"] == status_lake.failed_run and failure["partition_key"] == FAILED_DAY
    assert "planted failure" in failure["message"] and failure["severity"] == "ERROR"
    warning = next(a for a in body["data"] if a["kind"] == "check_warning")
    assert warning["severity"] == "WARN" and warning["message"].startswith("row_count_anomaly_silver_trades")
    assert {t["table"] for t in body["served_from"]} >= {"quality.alerts", "quality.check_results"}


@pytest.mark.parametrize("kind", ["run_failure", "check_failed", "check_warning", "stale"])
def test_alerts_of_one_kind(status_lake: StatusLake, kind: str) -> None:
    body = get(status_lake, "/api/v1/pipeline/alerts", kind=kind).json()
    want = [a for a in expected_alerts(status_lake) if a[0] == kind]
    assert want and body["count"] == len(want)
    _close(_tuples(body), want)


def test_alerts_since_and_limit(status_lake: StatusLake) -> None:
    want = expected_alerts(status_lake)
    since = want[2][1]
    body = get(status_lake, "/api/v1/pipeline/alerts", since=since.isoformat()).json()
    _close(_tuples(body), [a for a in want if a[1] >= since])
    assert body["count"] == 3
    _close(_tuples(get(status_lake, "/api/v1/pipeline/alerts", limit=2).json()), want[:2])
    naive = since.replace(tzinfo=None).isoformat()  # a time without zone is UTC
    assert get(status_lake, "/api/v1/pipeline/alerts", since=naive).json()["count"] == 3
    later = get(status_lake, "/api/v1/pipeline/alerts", since=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert later.json()["count"] == 0 and later.json()["notice"].startswith("no alerts since")


def test_alerts_of_an_empty_lake_explain_why(empty_api: ApiServer, bare_api: ApiServer) -> None:
    body = get(empty_api, "/api/v1/pipeline/alerts").json()
    assert body["count"] == 0 and body["notice"].startswith("no alerts: no failed run")
    bare = get(bare_api, "/api/v1/pipeline/alerts").json()
    assert bare["count"] == 0 and "not built yet" in bare["notice"]


@pytest.mark.parametrize(
    ("params", "name"),
    [({"kind": "bogus"}, "kind"), ({"since": "12345"}, "since"), ({"since": "yesterday"}, "since"),
     ({"since": "0001-01-01T00:00:00+01:00"}, "since"), ({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"),
     ({"limit": "many"}, "limit")],
)  # fmt: skip
def test_bad_alert_parameters_are_422_with_the_error_body(
    status_lake: StatusLake, params: dict[str, Any], name: str
) -> None:
    response = get(status_lake, "/api/v1/pipeline/alerts", **params)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and body["error"] == "validation_error"
    assert [e["name"] for e in body["errors"]] == [name] and body["detail"]


def test_openapi_documents_the_pipeline_routes(status_lake: StatusLake) -> None:
    spec = get(status_lake, "/openapi.json").json()
    for path in ("/api/v1/pipeline/freshness", "/api/v1/pipeline/alerts"):
        responses = spec["paths"][path]["get"]["responses"]
        assert {"200", "404", "422", "503"} <= set(responses), path
    params = {p["name"] for p in spec["paths"]["/api/v1/pipeline/alerts"]["get"]["parameters"]}
    assert params == {"since", "kind", "limit"}


# --- the dashboard's quality page -----------------------------------------------------------------------------


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def point(url: str) -> None:
        monkeypatch.setenv("CRYPTOLAKE_API_URL", url)
        get_settings.cache_clear()

    yield point
    get_settings.cache_clear()


def run_quality_page() -> AppTest:
    app = AppTest.from_file(str(QUALITY_PAGE), default_timeout=30)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_quality_page_shows_freshness_writer_and_alerts(status_lake: StatusLake, point_at: Any) -> None:
    point_at(status_lake.base_url)
    app = run_quality_page()
    labels = [m.label for m in app.metric]
    assert labels[:3] == [f"{spec.layer} ({spec.table})" for spec in LAYERS]
    assert [m.value.endswith("s behind") for m in app.metric[:3]] == [True] * 3
    assert app.metric[1].delta == "stale" and not app.metric[0].delta and not app.metric[2].delta
    assert any(c.value.startswith("Bronze writer: rows 1234") for c in app.caption)
    frames = [f.value for f in app.dataframe]
    alerts = next(f for f in frames if "kind" in f.columns)
    assert list(alerts["kind"]) == [a[0] for a in expected_alerts(status_lake)]
    assert any("asset_key" in f.columns for f in frames)  # the last run of each asset


def test_quality_page_empty_states(empty_api: ApiServer, point_at: Any) -> None:
    point_at(empty_api.base_url)
    app = run_quality_page()
    assert [m.value for m in app.metric[:3]] == ["no data"] * 3
    assert any(WRITER_STATUS_FILE in c.value for c in app.caption)
    assert any(s.value.startswith("No alerts. no alerts: no failed run") for s in app.success)


def test_schemathesis_finds_no_failure_in_the_pipeline_routes(status_lake: StatusLake, tmp_path: Path) -> None:
    """Every schemathesis check on the two routes of a lake that has every kind of alert, a writer status and
    asset runs (the suite-wide run in test_api.py covers them on the empty and pipeline-built lakes)."""
    from cryptolake_dagster_tests.serving.test_api import SCHEMATHESIS_CONFIG

    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    st = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(st), "--config-file", str(config), "run", f"{status_lake.base_url}/openapi.json", "--checks", "all",
         "--include-path-regex", "^/api/v1/pipeline/", "--max-examples", "60", "--seed", "12", "--workers", "1",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Tested: 2" in result.stdout and "No issues found" in result.stdout, result.stdout[-4000:]
