"""The serving API over real temporary lakehouses: real uvicorn servers, real HTTP, real pyiceberg tables."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
import requests

from cryptolake.tables import SILVER_OHLCV_1M
from serving.api.lake import GOLD_OHLCV_1H

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conftest import ApiServer

    from cryptolake.settings import Settings

TIMEOUT = 10
DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume")


def get(server: ApiServer, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{server.base_url}{path}", params=params, timeout=TIMEOUT)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exact(value: Decimal, column: str) -> str:
    """The text of ``value`` at the scale of the Silver column it was written to."""
    scale = SILVER_OHLCV_1M.schema.find_field(column).field_type.scale
    return f"{value:.{scale}f}"


def fixed_start(server: ApiServer) -> datetime:
    return server.fixed_rows[0]["minute"]


def test_health_reports_the_catalog(seeded_api: ApiServer) -> None:
    response = get(seeded_api, "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "catalog": "ok", "catalog_name": "lake", "detail": None}


def test_health_when_the_catalog_does_not_answer(
    serve: Callable[[Settings], ApiServer], make_settings: Callable[[Path], Settings], tmp_path: Path
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(tmp_path / "state").model_copy(update={"catalog_uri": dead})
    server = serve(settings)
    body = get(server, "/health").json()
    assert body["status"] == "ok" and body["catalog"] == "unavailable" and body["detail"]
    response = get(server, "/api/v1/symbols")
    assert response.status_code == 503
    assert "catalog" in response.json()["detail"]


def test_bars_are_exact_sorted_and_half_open(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    response = get(
        seeded_api, "/api/v1/bars/BTCUSDT", start=iso(t0 + timedelta(minutes=2)), end=iso(t0 + timedelta(minutes=7))
    )
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "BTCUSDT" and body["interval"] == "1m" and body["market"] == "spot"
    assert body["start"] == z(t0 + timedelta(minutes=2)) and body["end"] == z(t0 + timedelta(minutes=7))
    expected = seeded_api.fixed_rows[2:7]  # minute 2 included, minute 7 (== end) excluded
    assert body["count"] == len(body["data"]) == 5
    assert [bar["time"] for bar in body["data"]] == [z(row["minute"]) for row in expected]
    for bar, row in zip(body["data"], expected, strict=True):
        assert bar["exchange"] == "binance" and bar["market"] == "spot"
        assert bar["trade_count"] == row["trade_count"]
        for column in DECIMALS:
            assert isinstance(bar[column], str)
            assert bar[column] == exact(row[column], column)
            assert Decimal(bar[column]) == row[column]


def test_zero_and_tiny_decimals_are_plain_strings(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    bar = get(seeded_api, "/api/v1/bars/BTCUSDT", start=iso(t0), end=iso(t0 + timedelta(minutes=1))).json()["data"][0]
    assert bar["sell_volume"] == "0.00000000"
    assert bar["buy_volume"] == "0.00000001"
    assert bar["quote_volume"] == "79012.3456789012345678"
    assert bar["open"] == "64000.12345678"


def test_times_without_zone_are_utc(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    naive_start = t0.replace(tzinfo=None).isoformat()  # 12:00 UTC
    plus_two_end = (t0 + timedelta(minutes=3)).astimezone(timezone(timedelta(hours=2)))
    body = get(seeded_api, "/api/v1/bars/BTCUSDT", start=naive_start, end=iso(plus_two_end)).json()
    assert body["start"] == z(t0) and body["end"] == z(t0 + timedelta(minutes=3))
    assert [bar["time"] for bar in body["data"]] == [z(t0 + timedelta(minutes=i)) for i in range(3)]


def test_other_symbols_and_markets_are_excluded(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    window = {"start": iso(t0), "end": iso(t0 + timedelta(hours=1))}
    spot = get(seeded_api, "/api/v1/bars/btcusdt", **window).json()
    assert spot["symbol"] == "BTCUSDT" and spot["count"] == 10
    assert {bar["market"] for bar in spot["data"]} == {"spot"}
    futures = get(seeded_api, "/api/v1/bars/BTCUSDT", market="usdm_futures", **window).json()
    assert futures["count"] == 10 and {bar["market"] for bar in futures["data"]} == {"usdm_futures"}
    assert get(seeded_api, "/api/v1/bars/ETHUSDT", **window).json()["count"] == 10
    assert get(seeded_api, "/api/v1/bars/SOLUSDT", **window).json() == {
        **spot,
        "symbol": "SOLUSDT",
        "count": 0,
        "data": [],
    }


def test_limit_keeps_the_oldest_bars(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    body = get(seeded_api, "/api/v1/bars/BTCUSDT", start=iso(t0), end=iso(t0 + timedelta(hours=1)), limit=3).json()
    assert [bar["time"] for bar in body["data"]] == [z(t0 + timedelta(minutes=i)) for i in range(3)]


def test_default_range_is_the_last_24_hours(seeded_api: ApiServer) -> None:
    before = datetime.now(UTC)
    body = get(seeded_api, "/api/v1/bars/BTCUSDT").json()
    end = datetime.fromisoformat(body["end"])
    assert before - timedelta(seconds=1) <= end <= datetime.now(UTC) + timedelta(seconds=1)
    assert end - datetime.fromisoformat(body["start"]) == timedelta(hours=24)
    assert body["count"] == seeded_api.recent_bars  # the 2024 bars are outside the window
    times = [bar["time"] for bar in body["data"]]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_hourly_bars_come_from_gold(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    body = get(
        seeded_api,
        "/api/v1/bars/BTCUSDT",
        interval="1h",
        start=iso(t0 + timedelta(hours=1)),
        end=iso(t0 + timedelta(hours=4)),
    ).json()
    expected = seeded_api.gold_rows[1:4]
    assert body["interval"] == "1h" and body["count"] == 3
    assert [bar["time"] for bar in body["data"]] == [z(row["hour"]) for row in expected]
    for bar, row in zip(body["data"], expected, strict=True):
        assert bar["close"] == exact(row["close"], "close") and bar["quote_volume"] == exact(
            row["quote_volume"], "quote_volume"
        )
        assert bar["buy_volume"] is None and bar["sell_volume"] is None


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T11:00:00Z"}, "start"),
        ({"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:00:00Z"}, "start"),
        ({"interval": "5m"}, "1m"),
        ({"limit": 0}, "limit"),
        ({"market": "margin"}, "market"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_invalid_requests_are_422(seeded_api: ApiServer, params: dict[str, Any], needle: str) -> None:
    response = get(seeded_api, "/api/v1/bars/BTCUSDT", **params)
    assert response.status_code == 422
    assert needle in str(response.json()["detail"])


def test_missing_tables_are_503_with_a_hint(empty_api: ApiServer, bare_api: ApiServer) -> None:
    gold = get(empty_api, "/api/v1/bars/BTCUSDT", interval="1h")
    assert gold.status_code == 503
    assert GOLD_OHLCV_1H in gold.json()["detail"] and "run the pipeline" in gold.json()["detail"]
    for path in ("/api/v1/bars/BTCUSDT", "/api/v1/symbols"):
        response = get(bare_api, path)
        assert response.status_code == 503
        assert SILVER_OHLCV_1M.identifier in response.json()["detail"]


def test_no_rows_is_an_empty_list(empty_api: ApiServer) -> None:
    response = get(empty_api, "/api/v1/bars/BTCUSDT")
    assert response.status_code == 200
    assert response.json()["count"] == 0 and response.json()["data"] == []


def test_symbols(seeded_api: ApiServer, empty_api: ApiServer) -> None:
    assert get(seeded_api, "/api/v1/symbols").json() == {"count": 2, "data": ["BTCUSDT", "ETHUSDT"]}
    assert get(seeded_api, "/api/v1/symbols", market="usdm_futures").json()["data"] == ["BTCUSDT"]
    assert get(empty_api, "/api/v1/symbols").json() == {"count": 0, "data": []}


def test_openapi_documents_decimals_as_strings(seeded_api: ApiServer) -> None:
    schemas = get(seeded_api, "/openapi.json").json()["components"]["schemas"]
    assert schemas["BarPublic"]["properties"]["close"]["type"] == "string"
