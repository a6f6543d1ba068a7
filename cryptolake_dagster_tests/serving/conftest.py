"""Fixtures of the serving tests: temporary lakehouses written with pyiceberg and the real API served by uvicorn
on a free port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import uvicorn
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.types import DecimalType, LongType, NestedField, StringType, TimestamptzType

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import Settings
from cryptolake.tables import SILVER_OHLCV_1M
from serving.api.lake import GOLD_OHLCV_1H
from serving.api.main import create_app

FIXED_START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIXED_BARS = 10  # BTCUSDT spot bars at FIXED_START + 0..9 minutes
RECENT_BARS = 30  # BTCUSDT spot bars in the 30 minutes before the fixture ran
GOLD_HOURS = 5  # BTCUSDT spot hourly bars from FIXED_START
BUILT_AT = datetime(2024, 5, 2, tzinfo=UTC)

# Gold hourly bars as the dbt model fct_ohlcv_1h will write them (see serving.api.lake.GOLD_OHLCV_1H).
GOLD_SCHEMA = Schema(
    NestedField(1, "exchange", StringType(), required=False),
    NestedField(2, "market", StringType(), required=False),
    NestedField(3, "symbol", StringType(), required=False),
    NestedField(4, "hour", TimestamptzType(), required=False),
    *(
        NestedField(i, name, DecimalType(38, 8), required=False)
        for i, name in enumerate(("open", "high", "low", "close", "volume"), 5)
    ),
    NestedField(10, "quote_volume", DecimalType(38, 16), required=False),
    NestedField(11, "trade_count", LongType(), required=False),
    NestedField(12, "vwap", DecimalType(38, 8), required=False),
)


@dataclass(frozen=True)
class ApiServer:
    base_url: str
    settings: Settings
    fixed_rows: tuple[dict[str, Any], ...] = ()  # BTCUSDT spot 1-minute bars from FIXED_START, as written
    gold_rows: tuple[dict[str, Any], ...] = ()  # BTCUSDT spot hourly bars from FIXED_START, as written
    recent_bars: int = 0  # BTCUSDT spot 1-minute bars in the last RECENT_BARS minutes


def lake_settings(state_dir: Path) -> Settings:
    """Settings of a temporary local lakehouse, passed explicitly (independent of CRYPTOLAKE_* variables)."""
    return Settings(state_dir=state_dir, profile="local", catalog_uri=None, warehouse=None, catalog_name="lake")


def silver_bar(symbol: str, minute: datetime, i: int, market: str = "spot") -> dict[str, Any]:
    """A 1-minute bar with distinct full-scale decimals; bar 0 has zero sell volume, tiny buy volume."""
    base = Decimal("64000.12345678") + i
    return {
        "exchange": "binance",
        "market": market,
        "symbol": symbol,
        "minute": minute,
        "open": base,
        "high": base + Decimal("10.00000001"),
        "low": base - Decimal("9.99999999"),
        "close": base + Decimal("1.5"),
        "volume": Decimal("1.23456789") + i,
        "quote_volume": Decimal("79012.3456789012345678") + i,
        "trade_count": 100 + i,
        "vwap": base + Decimal("0.00000001"),
        "buy_volume": Decimal("0.00000001") if i == 0 else Decimal("0.5") + i,
        "sell_volume": Decimal("0E-8") if i == 0 else Decimal("0.73456789"),
        "first_agg_trade_id": 1000 * i,
        "last_agg_trade_id": 1000 * i + 99,
        "built_at": BUILT_AT,
    }


def append_rows(catalog: Catalog, identifier: str, rows: list[dict[str, Any]]) -> None:
    table = catalog.load_table(identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def seed_silver(catalog: Catalog, now: datetime) -> list[dict[str, Any]]:
    fixed = [silver_bar("BTCUSDT", FIXED_START + timedelta(minutes=i), i) for i in range(FIXED_BARS)]
    recent_start = now.replace(second=0, microsecond=0) - timedelta(minutes=RECENT_BARS)
    recent = [silver_bar("BTCUSDT", recent_start + timedelta(minutes=i), i) for i in range(RECENT_BARS)]
    others = [
        *(silver_bar("ETHUSDT", FIXED_START + timedelta(minutes=i), i) for i in range(FIXED_BARS)),
        *(silver_bar("BTCUSDT", FIXED_START + timedelta(minutes=i), i, "usdm_futures") for i in range(FIXED_BARS)),
    ]
    # Two commits, newest first and shuffled, so the API has to sort.
    append_rows(catalog, SILVER_OHLCV_1M.identifier, list(reversed(fixed[5:])) + recent[::2] + others)
    append_rows(catalog, SILVER_OHLCV_1M.identifier, fixed[:5] + recent[1::2])
    return fixed


def seed_gold(catalog: Catalog) -> list[dict[str, Any]]:
    catalog.create_table(GOLD_OHLCV_1H, schema=GOLD_SCHEMA)
    rows = []
    for i in range(GOLD_HOURS):
        bar = silver_bar("BTCUSDT", FIXED_START + timedelta(hours=i), i)
        bar["hour"] = bar.pop("minute")
        rows.append({field.name: bar[field.name] for field in GOLD_SCHEMA.fields})
    append_rows(catalog, GOLD_OHLCV_1H, list(reversed(rows)))
    return rows


@pytest.fixture(scope="session")
def serve() -> Iterator[Callable[[Settings], ApiServer]]:
    """Start ``create_app(settings)`` under uvicorn on a free port; every server stops at session end."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings) -> ApiServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"api-{port}")
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return ApiServer(f"http://127.0.0.1:{port}", settings)

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def make_settings() -> Callable[[Path], Settings]:
    return lake_settings


@pytest.fixture(scope="session")
def seeded_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """Silver with BTCUSDT (spot: 10 fixed + 30 recent bars; futures), ETHUSDT; Gold with 5 hourly bars."""
    settings = lake_settings(tmp_path_factory.mktemp("seeded") / "state")
    catalog = bootstrap_lakehouse(settings)
    fixed = seed_silver(catalog, datetime.now(UTC))
    gold = seed_gold(catalog)
    server = serve(settings)
    return replace(server, fixed_rows=tuple(fixed), gold_rows=tuple(gold), recent_bars=RECENT_BARS)


@pytest.fixture(scope="session")
def empty_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """A bootstrapped lakehouse without rows (and without the Gold table)."""
    settings = lake_settings(tmp_path_factory.mktemp("empty") / "state")
    bootstrap_lakehouse(settings)
    return serve(settings)


@pytest.fixture(scope="session")
def bare_api(serve: Callable[[Settings], ApiServer], tmp_path_factory: pytest.TempPathFactory) -> ApiServer:
    """A catalog without namespaces or tables: the pipeline never ran."""
    settings = lake_settings(tmp_path_factory.mktemp("bare") / "state")
    get_catalog(settings)
    return serve(settings)
