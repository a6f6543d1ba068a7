"""The walking skeleton end to end, with real parts only:

recorded-format trades -> exchange simulator (WebSocket) -> producer CLI -> local Kafka broker -> Bronze writer
CLI (Spark -> Iceberg) -> Dagster job (Silver Spark asset, dbt Gold model, Soda checks) -> FastAPI over HTTP.
The API's bars must equal an independent recomputation from the trades the test generated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import uvicorn
from pyiceberg.expressions import In

from cryptolake.broker import free_port
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import REPO_ROOT
from cryptolake.tables import BRONZE_TRADES
from cryptolake_dagster_tests.pipeline.trade_fixtures import expected_bars, generate_trades, write_recording
from simulators.binance import run_in_thread

DAY = datetime(2024, 3, 1, tzinfo=UTC)
START = DAY + timedelta(hours=10)
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
PER_SYMBOL = 400
VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume")


def _run_cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def api_url(settings):
    from serving.api.main import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def ingested(settings, broker, tmp_path_factory):
    """Run the real ingestion path once; return the trades the test generated."""
    trades = generate_trades(SYMBOLS, PER_SYMBOL, START, timedelta(minutes=90), seed=11)
    recording = write_recording(trades, tmp_path_factory.mktemp("rec") / "trades.ndjson")
    env = {
        **os.environ,
        "CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "CRYPTOLAKE_SYMBOLS": ",".join(SYMBOLS),
        "PYTHONUNBUFFERED": "1",
    }
    with run_in_thread(mode="replay", replay_file=recording, speed=0, wait_for_subscriber=True) as simulator:
        producer = subprocess.Popen(
            [sys.executable, "-m", "streaming.producer", "--ws-url", simulator.url, "--rest-url", simulator.rest_url,
             "--progress-every", "1", "--no-checkpoint"],
            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            simulator.wait_for_emitted(len(trades), timeout=90)
            time.sleep(2)  # let the producer publish what it has received
        finally:
            producer.terminate()
            output = producer.communicate(timeout=30)[0]
        assert producer.returncode == 0, output
        assert "producer stopped" in output and "undelivered=0" in output, output
    writer = _run_cli(["streaming.bronze_writer", "--commit-interval", "2", "--exit-when-idle", "6"], env, timeout=300)
    assert writer.returncode == 0, writer.stdout + writer.stderr
    return trades


def test_bronze_holds_every_trade_once_with_exact_decimals(ingested, settings) -> None:
    rows = (
        get_catalog(settings)
        .load_table(BRONZE_TRADES.identifier)
        .scan(row_filter=In("symbol", SYMBOLS))
        .to_arrow()
        .to_pylist()
    )
    assert len(rows) == len(ingested)
    assert len({(r["kafka_partition"], r["kafka_offset"]) for r in rows}) == len(rows)
    by_id = {(r["symbol"], r["agg_trade_id"]): r for r in rows}
    for trade in ingested:
        row = by_id[(trade.symbol, trade.agg_id)]
        assert (row["price"], row["quantity"]) == (trade.price, trade.qty)
        assert row["trade_time"] == trade.time


def test_api_serves_bars_equal_to_recomputation(ingested, settings, api_url) -> None:
    from cryptolake_dagster.definitions import load_definitions

    result = (
        load_definitions().get_job_def("silver_gold_daily").execute_in_process(partition_key=DAY.date().isoformat())
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks), [(c.check_name, c.metadata) for c in checks]

    for interval, bucket in (("1m", timedelta(minutes=1)), ("1h", timedelta(hours=1))):
        expected = expected_bars(ingested, bucket)
        for symbol in SYMBOLS:
            response = requests.get(
                f"{api_url}/api/v1/bars/{symbol}",
                params={"interval": interval, "start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat(),
                        "limit": 5000},
                timeout=30,
            )  # fmt: skip
            assert response.status_code == 200, response.text
            bars = response.json()["data"]
            want = {key[1]: bar for key, bar in expected.items() if key[0] == symbol}
            assert len(bars) == len(want) > 0
            for bar in bars:
                moment = datetime.fromisoformat(bar["time"].replace("Z", "+00:00"))
                exp = want[moment]
                for column in VALUE_COLUMNS:
                    assert isinstance(bar[column], str), f"{column} must be an exact decimal string"
                    assert Decimal(bar[column]) == exp[column], (interval, symbol, moment, column)
                assert bar["trade_count"] == exp["trade_count"]
