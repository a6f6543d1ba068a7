"""The serving API over real temporary lakehouses: real uvicorn servers, real HTTP, real pyiceberg tables.

``seeded_api`` holds hand-written Gold tables (edge cases of decimals, times and commits); ``pipeline_api`` is built
by the real pipeline (``dbt build`` over planted Silver bars, Binance klines, CoinGecko and Fear & Greed), and every
number the routes return is recomputed here from what was planted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
import requests
from pydantic import SecretStr

from cryptolake.lakehouse.bootstrap import bootstrap_lakehouse
from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.tables import GOLD_DIM_SYMBOL, GOLD_OHLCV_1H, GOLD_OHLCV_1M

if TYPE_CHECKING:
    from collections.abc import Callable

    from conftest import ApiServer, PipelineApi

    from cryptolake.settings import Settings

TIMEOUT = 10
DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume")
SCALES = {"open": 8, "high": 8, "low": 8, "close": 8, "vwap": 8, "volume": 8, "buy_volume": 8, "sell_volume": 8,
          "quote_volume": 16}  # fmt: skip
E8 = Decimal("1e-8")
INTERVALS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
ERROR_KEYS = {"status", "error", "detail", "errors"}


def get(server: Any, path: str, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    return requests.get(f"{server.base_url}{path}", params=params, timeout=TIMEOUT, headers=headers)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exact(value: Decimal, column: str) -> str:
    return f"{value:.{SCALES[column]}f}"


def fixed_start(server: ApiServer) -> datetime:
    return server.fixed_rows[0]["minute"]


def assert_error(response: requests.Response, status: int, needle: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["status"] == status, body
    assert needle in body["detail"], body
    return body


# --- hand-written Gold: decimals, times, ranges, validation ----------------------------------------------------------


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
    assert_error(get(server, "/api/v1/symbols"), 503, "catalog")


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
        assert bar["trade_count"] == row["trade_count"] and bar["complete"] is True
        for column in DECIMALS:
            assert bar[column] == exact(row[column], column)
    [served] = body["served_from"]
    assert served["table"] == GOLD_OHLCV_1M and isinstance(served["snapshot_id"], int)


def test_a_client_that_accepts_gzip_gets_the_same_bars_compressed(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    window = {"start": iso(t0), "end": iso(t0 + timedelta(days=1))}
    path = "/api/v1/bars/BTCUSDT"
    plain = get(seeded_api, path, headers={"Accept-Encoding": "identity"}, **window)
    packed = requests.get(f"{seeded_api.base_url}{path}", params=window, timeout=TIMEOUT, stream=True,
                          headers={"Accept-Encoding": "br;q=1.0, gzip;q=0.8"})  # fmt: skip
    raw = packed.raw.read(decode_content=False)
    refused = get(seeded_api, path, headers={"Accept-Encoding": "gzip;q=0"}, **window)
    assert plain.status_code == packed.status_code == refused.status_code == 200
    assert "Content-Encoding" not in plain.headers and "Content-Encoding" not in refused.headers
    assert packed.headers["Content-Encoding"] == "gzip" and packed.headers["Vary"] == "Accept-Encoding"
    assert len(raw) < len(plain.content) / 3  # a day of bars compresses well
    assert json.loads(gzip.decompress(raw)) == plain.json() == refused.json()
    assert plain.json()["count"] > 1


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


def test_other_symbols_and_markets(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    window = {"start": iso(t0), "end": iso(t0 + timedelta(hours=1))}
    spot = get(seeded_api, "/api/v1/bars/btcusdt", **window).json()
    assert spot["symbol"] == "BTCUSDT" and spot["count"] == 10
    assert {bar["market"] for bar in spot["data"]} == {"spot"}
    futures = get(seeded_api, "/api/v1/bars/BTCUSDT", market="usdm_futures", **window).json()
    assert futures["count"] == 10 and {bar["market"] for bar in futures["data"]} == {"usdm_futures"}
    assert get(seeded_api, "/api/v1/bars/ETHUSDT", **window).json()["count"] == 10
    assert_error(get(seeded_api, "/api/v1/bars/SOLUSDT", **window), 404, "unknown symbol SOLUSDT")
    assert_error(get(seeded_api, "/api/v1/bars/ETHUSDT", market="usdm_futures", **window), 404, "spot")


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
        seeded_api, "/api/v1/bars/BTCUSDT", interval="1h", start=iso(t0 + timedelta(hours=1)),
        end=iso(t0 + timedelta(hours=4)),
    ).json()  # fmt: skip
    expected = seeded_api.gold_rows[1:4]
    assert body["interval"] == "1h" and body["count"] == 3
    assert body["served_from"][0]["table"] == GOLD_OHLCV_1H
    assert [bar["time"] for bar in body["data"]] == [z(row["hour"]) for row in expected]
    for bar, row in zip(body["data"], expected, strict=True):
        assert bar["close"] == exact(row["close"], "close")
        assert bar["quote_volume"] == exact(row["quote_volume"], "quote_volume")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T11:00:00Z"}, "start"),
        ({"start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:00:00Z"}, "start"),
        ({"interval": "3m"}, "interval"),
        ({"limit": 0}, "limit"),
        ({"market": "margin"}, "market"),
        ({"start": "yesterday"}, "start"),
        ({"start": "1714564800"}, "not a number"),  # a number where a timestamp is expected
        ({"end": "1714564800000"}, "not a number"),
        ({"as_of": "last tuesday"}, "as_of"),
    ],
)
def test_invalid_requests_are_422_with_the_error_body(
    seeded_api: ApiServer, params: dict[str, Any], needle: str
) -> None:
    body = assert_error(get(seeded_api, "/api/v1/bars/BTCUSDT", **params), 422, needle)
    assert body["error"] == "validation_error" and body["errors"]


def test_unknown_routes_and_snapshots_are_404(seeded_api: ApiServer) -> None:
    assert_error(get(seeded_api, "/api/v1/nothing"), 404, "no route")
    assert_error(get(seeded_api, "/api/v1/bars/BTCUSDT", as_of="12345"), 404, "no snapshot 12345")


def test_as_of_reads_the_table_as_it_was(seeded_api: ApiServer) -> None:
    t0 = fixed_start(seeded_api)
    catalog = get_catalog(seeded_api.settings)
    first, second = [s.snapshot_id for s in catalog.load_table(GOLD_OHLCV_1M).snapshots()][-2:]
    window = {"start": iso(t0), "end": iso(t0 + timedelta(hours=1))}
    now = get(seeded_api, "/api/v1/bars/BTCUSDT", **window).json()
    assert now["count"] == 10 and now["served_from"][0]["snapshot_id"] == second
    then = get(seeded_api, "/api/v1/bars/BTCUSDT", as_of=str(first), **window).json()
    # the first commit held minutes 5..9 of the fixed bars; minutes 0..4 came with the second
    assert [bar["time"] for bar in then["data"]] == [z(t0 + timedelta(minutes=i)) for i in range(5, 10)]
    assert then["served_from"][0]["snapshot_id"] == first
    committed = datetime.fromisoformat(now["served_from"][0]["committed_at"])
    by_time = get(seeded_api, "/api/v1/bars/BTCUSDT", as_of=iso(committed), **window).json()
    assert by_time["count"] == 10
    before = get(seeded_api, "/api/v1/bars/BTCUSDT", as_of="2000-01-01T00:00:00Z", **window).json()
    assert before["count"] == 0 and before["served_from"][0]["snapshot_id"] is None


def test_empty_and_bare_lakes_answer_4xx_or_empty(empty_api: ApiServer, bare_api: ApiServer) -> None:
    for server in (empty_api, bare_api):
        assert get(server, "/api/v1/symbols").json() == {"count": 0, "data": []}
        assert_error(get(server, "/api/v1/bars/BTCUSDT"), 404, "not built yet")
        assert_error(get(server, "/api/v3/klines", symbol="BTCUSDT", interval="1m"), 404, "not built yet")
        assert_error(get(server, "/api/v1/history/bitcoin"), 404, "not built yet")
        checks = get(server, "/api/v1/quality/checks").json()
        assert checks["count"] == 0 and checks["data"] == [] and "no check results yet" in checks["notice"]
        overview = get(server, "/api/v1/market/overview").json()
        assert overview["count"] == 0 and overview["notice"]


def test_new_commits_are_served_within_5_s(
    serve: Callable[[Settings], ApiServer], make_settings: Callable[[Path], Settings], tmp_path: Path
) -> None:
    from conftest import GOLD_1M_SCHEMA, gold_bar, seed_gold_1m, silver_bar

    settings = make_settings(tmp_path / "state")
    catalog = bootstrap_lakehouse(settings)
    seed_gold_1m(catalog, datetime.now(UTC))
    server = serve(settings)
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    window = {"start": iso(t0), "end": iso(t0 + timedelta(hours=1))}
    assert get(server, "/api/v1/bars/BTCUSDT", **window).json()["count"] == 0
    rows = [gold_bar(silver_bar("BTCUSDT", t0 + timedelta(minutes=i), i), "open_time") for i in range(3)]
    catalog.load_table(GOLD_OHLCV_1M).append(pa.Table.from_pylist(rows, schema=GOLD_1M_SCHEMA))
    committed = time.monotonic()
    while get(server, "/api/v1/bars/BTCUSDT", **window).json()["count"] != 3:
        assert time.monotonic() - committed < 5, "a new commit was not served within 5 s"
        time.sleep(0.1)


def test_cached_answers_are_served_on_the_event_loop_and_misses_on_a_thread(seeded_api: ApiServer) -> None:
    from serving.api.lake import Lake

    lake = Lake(lambda: get_catalog(seeded_api.settings), poll_interval_s=60)
    ran_on: list[int] = []

    def answer() -> int:
        ran_on.append(threading.get_ident())
        _, parts = lake.load(GOLD_OHLCV_1M, keys=("symbol", "market"), time_column="open_time")
        return sum(part.num_rows for part in parts.data.values())

    async def three_answers() -> tuple[int, list[int]]:
        counts = [await lake.serve(answer), await lake.serve(answer)]
        lake.refresh()  # the table's snapshot must be looked up again: catalog I/O, not done on the loop
        counts.append(await lake.serve(answer))
        return threading.get_ident(), counts

    loop, counts = asyncio.run(three_answers())
    assert counts[0] == counts[1] == counts[2] > 0
    # miss: tried on the loop, stopped before any I/O, answered on a worker; hit: on the loop alone; stale: a worker
    assert ran_on[0] == loop and ran_on[1] != loop
    assert ran_on[2] == loop
    assert ran_on[3] == loop and ran_on[4] != loop and len(ran_on) == 5
    assert lake.load_count == 1


def test_a_stale_table_is_served_as_last_seen_while_a_thread_looks_it_up(
    make_settings: Callable[[Path], Settings], tmp_path: Path
) -> None:
    from conftest import GOLD_1M_SCHEMA, gold_bar, seed_gold_1m, silver_bar

    from serving.api.lake import Lake

    settings = make_settings(tmp_path / "state")
    catalog = bootstrap_lakehouse(settings)
    seed_gold_1m(catalog, datetime.now(UTC))
    now = [0.0]
    lake = Lake(lambda: get_catalog(settings), poll_interval_s=1.0, clock=lambda: now[0])
    ran_on: list[int] = []

    def snapshot() -> int | None:
        ran_on.append(threading.get_ident())
        return lake.view(GOLD_OHLCV_1M).snapshot_id

    async def serve() -> tuple[int | None, bool]:
        ran_on.clear()
        return await lake.serve(snapshot), ran_on == [threading.get_ident()]  # answered on the loop alone?

    async def scenario() -> None:
        first, on_loop = await serve()
        assert not on_loop  # nothing looked up yet: a worker thread asks the catalog
        rows = [gold_bar(silver_bar("BTCUSDT", datetime(2024, 7, 1, tzinfo=UTC), 0), "open_time")]
        catalog.load_table(GOLD_OHLCV_1M).append(pa.Table.from_pylist(rows, schema=GOLD_1M_SCHEMA))
        now[0] = 1.5  # stale, within two poll intervals: the last snapshot, at once, and a look-up on a thread
        assert await serve() == (first, True)
        deadline = time.monotonic() + 10
        while (answer := await serve())[0] == first:
            assert time.monotonic() < deadline, "the revalidation never brought the new snapshot"
            await asyncio.sleep(0.02)
        assert answer[1] and answer[0] != first
        now[0] = 10.0  # idle for long: the first request waits for the catalog rather than serve old metadata
        assert (await serve())[1] is False

    asyncio.run(scenario())


def kept_answers(server: ApiServer) -> float:
    text = get(server, "/metrics").text
    return float(re.search(r"^cryptolake_api_kept_answers_total (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_answers_kept_by_url_follow_the_snapshots_and_the_key(
    serve: Callable[[Settings], ApiServer], make_settings: Callable[[Path], Settings], tmp_path: Path
) -> None:
    from conftest import DIM_SYMBOL_SCHEMA, GOLD_1M_SCHEMA, gold_bar, seed_gold_1m, silver_bar

    settings = make_settings(tmp_path / "state").model_copy(update={"api_key": SecretStr("k3y")})
    catalog = bootstrap_lakehouse(settings)
    seed_gold_1m(catalog, datetime.now(UTC))
    server = serve(settings)
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    window = {"start": iso(t0), "end": iso(t0 + timedelta(hours=1))}
    key, plain = {"X-API-Key": "k3y"}, {"X-API-Key": "k3y", "Accept-Encoding": "identity"}
    routed = get(server, "/api/v1/bars/BTCUSDT", headers=plain, **window)
    assert routed.status_code == 200 and kept_answers(server) == 0
    kept = get(server, "/api/v1/bars/BTCUSDT", headers=plain, **window)
    assert kept_answers(server) == 1 and kept.content == routed.content
    assert [kept.headers.get(h) for h in ("content-type", "content-length", "vary", "content-encoding")] == [
        routed.headers.get(h) for h in ("content-type", "content-length", "vary", "content-encoding")
    ]
    # a kept answer still needs the key; a default window ("the last 24 hours") is never kept
    assert_error(get(server, "/api/v1/bars/BTCUSDT", **window), 401, "X-API-Key")
    assert_error(get(server, "/api/v1/bars/BTCUSDT", headers={"X-API-Key": "no"}, **window), 401, "X-API-Key")
    for _ in range(2):
        assert get(server, "/api/v1/bars/BTCUSDT", headers=key).status_code == 200
    assert kept_answers(server) == 1
    # a new snapshot of the bars: the kept answer is not served again
    rows = [gold_bar(silver_bar("BTCUSDT", t0 + timedelta(minutes=i), i), "open_time") for i in range(2)]
    catalog.load_table(GOLD_OHLCV_1M).append(pa.Table.from_pylist(rows, schema=GOLD_1M_SCHEMA))
    committed = time.monotonic()
    while get(server, "/api/v1/bars/BTCUSDT", headers=key, **window).json()["count"] != 2:
        assert time.monotonic() - committed < 5, "a kept answer outlived its snapshot"
        time.sleep(0.1)
    # a new snapshot of gold.dim_symbol (read to validate the symbol) also retires the answer
    assert get(server, "/api/v1/bars/BTCUSDT", headers=key, **window).status_code == 200
    hits = kept_answers(server)
    dims = catalog.load_table(GOLD_DIM_SYMBOL)
    dims.append(pa.Table.from_pylist([{**dims.scan().to_arrow().to_pylist()[0], "symbol": "NEWUSDT"}],
                                     schema=DIM_SYMBOL_SCHEMA))  # fmt: skip
    time.sleep(2 * settings.api_snapshot_poll_s + 0.3)  # past the stale-while-revalidate window
    assert get(server, "/api/v1/bars/BTCUSDT", headers=key, **window).json()["count"] == 2
    assert kept_answers(server) == hits
    assert get(server, "/api/v1/bars/BTCUSDT", headers=key, **window).json()["count"] == 2
    assert kept_answers(server) == hits + 1


def test_api_key(serve: Callable[[Settings], ApiServer], seeded_api: ApiServer) -> None:
    server = serve(seeded_api.settings.model_copy(update={"api_key": SecretStr("s3cret")}))
    assert_error(get(server, "/api/v1/symbols"), 401, "X-API-Key")
    assert_error(get(server, "/api/v1/symbols", headers={"X-API-Key": "wrong"}), 401, "X-API-Key")
    assert get(server, "/api/v1/symbols", headers={"X-API-Key": "s3cret"}).status_code == 200
    assert get(server, "/health").status_code == 200 and get(server, "/metrics").status_code == 200
    spec = get(server, "/openapi.json").json()
    assert "401" in spec["paths"]["/api/v1/bars/{symbol}"]["get"]["responses"]


def test_metrics(seeded_api: ApiServer) -> None:
    get(seeded_api, "/api/v1/symbols")
    get(seeded_api, "/api/v1/bars/NOPE")
    text = get(seeded_api, "/metrics").text
    assert 'cryptolake_api_requests_total{method="GET",route="/api/v1/symbols",status="200"}' in text
    assert 'cryptolake_api_requests_total{method="GET",route="/api/v1/bars/{symbol}",status="404"}' in text
    assert 'cryptolake_api_request_duration_seconds_bucket{le="0.05",method="GET",route="/api/v1/symbols"}' in text
    assert f'cryptolake_table_snapshot_age_seconds{{table="{GOLD_OHLCV_1M}"}}' in text
    assert 'cryptolake_table_exists{table="gold.fct_market_daily"} 0.0' in text


def test_openapi_documents_every_status_and_the_error_body(seeded_api: ApiServer) -> None:
    spec = get(seeded_api, "/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["BarPublic"]["properties"]["close"]["anyOf"][0]["type"] == "string"
    for path, item in spec["paths"].items():
        if path.startswith(("/api/", "/fapi/")):
            responses = item["get"]["responses"]
            assert {"200", "404", "422", "503"} <= set(responses), path
            assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorPublic")


# --- a lakehouse built by the real pipeline: values against an independent recomputation --------------------------


def _bars_of(planted: Any, symbol: str, market: str) -> list[dict[str, Any]]:
    return sorted((m for m in planted.minutes if m["symbol"] == symbol and m["market"] == market),
                  key=lambda m: m["minute"])  # fmt: skip


def _rollup(minutes: list[dict[str, Any]], length: int, holed: datetime) -> dict[datetime, dict[str, Any]]:
    groups: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for m in minutes:
        epoch_minutes = int(m["minute"].timestamp()) // 60
        groups[datetime.fromtimestamp((epoch_minutes - epoch_minutes % length) * 60, UTC)].append(m)
    bars = {}
    for start, ms in groups.items():
        volume, quote = sum(m["volume"] for m in ms), sum(m["quote_volume"] for m in ms)
        bars[start] = {
            "open": ms[0]["open"], "high": max(m["high"] for m in ms), "low": min(m["low"] for m in ms),
            "close": ms[-1]["close"], "volume": volume, "quote_volume": quote,
            "trade_count": sum(m["trade_count"] for m in ms), "vwap": (quote / volume).quantize(E8, ROUND_HALF_UP),
            "buy_volume": sum(m["buy_volume"] for m in ms),
            "taker_buy_quote_volume": sum(m["taker_buy_quote_volume"] for m in ms),
            "complete": all(m["minute"] != holed for m in ms), "minute_count": len(ms),
        }  # fmt: skip
    return bars


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_bars_of_every_interval_equal_a_recomputation(pipeline_api: PipelineApi, interval: str) -> None:
    planted = pipeline_api.planted
    expected = _rollup(_bars_of(planted, "BTCUSDT", "spot"), INTERVALS[interval], planted.holed_minute)
    body = get(pipeline_api, "/api/v1/bars/BTCUSDT", interval=interval, start="2024-05-01", end="2024-05-03",
               limit=100_000).json()  # fmt: skip
    assert body["count"] == len(expected)
    for bar in body["data"]:
        want = expected[datetime.fromisoformat(bar["time"])]
        for column in ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume",
                       "taker_buy_quote_volume"):  # fmt: skip
            assert Decimal(bar[column]) == want[column], (interval, bar["time"], column)
        assert bar["trade_count"] == want["trade_count"] and bar["minute_count"] == want["minute_count"]
        assert bar["complete"] is want["complete"], (interval, bar["time"])
        assert bar["incomplete_minutes"] == (0 if want["complete"] else 1)
    assert not all(bar["complete"] for bar in body["data"])  # the hole is flagged


def test_klines_are_binance_arrays_in_binance_order(pipeline_api: PipelineApi) -> None:
    planted = pipeline_api.planted
    expected = _rollup(_bars_of(planted, "BTCUSDT", "spot"), 60, planted.holed_minute)
    start_ms = int(datetime(2024, 5, 1, 3, tzinfo=UTC).timestamp() * 1000)
    end_ms = start_ms + 2 * 3_600_000  # inclusive: three hourly klines
    klines = get(pipeline_api, "/api/v3/klines", symbol="BTCUSDT", interval="1h", startTime=start_ms,
                 endTime=end_ms).json()  # fmt: skip
    assert [k[0] for k in klines] == [start_ms, start_ms + 3_600_000, end_ms]
    for k in klines:
        want = expected[datetime.fromtimestamp(k[0] / 1000, UTC)]
        assert len(k) == 12 and k[6] == k[0] + 3_600_000 - 1 and k[11] == "0"
        assert [Decimal(v) for v in (k[1], k[2], k[3], k[4], k[5], k[7], k[9], k[10])] == [
            want["open"], want["high"], want["low"], want["close"], want["volume"], want["quote_volume"],
            want["buy_volume"], want["taker_buy_quote_volume"],
        ]  # fmt: skip
        assert k[8] == want["trade_count"] and all(isinstance(k[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10))
    newest = get(pipeline_api, "/api/v3/klines", symbol="btcusdt", interval="1m", limit=2).json()
    last_two = sorted(expected_minute["minute"] for expected_minute in _bars_of(planted, "BTCUSDT", "spot"))[-2:]
    assert [k[0] for k in newest] == [int(t.timestamp() * 1000) for t in last_two]
    futures = get(pipeline_api, "/fapi/v1/klines", symbol="BTCUSDT", interval="1d").json()
    assert len(futures) == 1
    assert_error(get(pipeline_api, "/api/v3/klines", symbol="BTCUSDT", interval="1h", startTime=end_ms,
                     endTime=start_ms), 422, "startTime")  # fmt: skip
    assert_error(get(pipeline_api, "/api/v3/klines", symbol="BTCUSDT", interval="2h"), 422, "interval")


def _daily_closes(planted: Any) -> dict[date, tuple[str, Decimal]]:
    """bitcoin's daily price by the documented precedence, recomputed from what was planted."""
    spot = _bars_of(planted, "BTCUSDT", "spot")
    expected = {row["day"]: ("coingecko", row["price_usd"]) for row in planted.coingecko}
    for kline in planted.klines:
        if kline["symbol"] == "BTCUSDT":
            expected[kline["open_time"].date()] = ("binance_klines", kline["close"])
    whole_day = [m for m in spot if m["minute"].date() == date(2024, 5, 1)]  # no hole, trade count = the kline's
    expected[date(2024, 5, 1)] = ("trades", whole_day[-1]["close"])
    return expected


def test_history_and_market_daily_equal_a_recomputation(pipeline_api: PipelineApi) -> None:
    expected = _daily_closes(pipeline_api.planted)
    history = get(pipeline_api, "/api/v1/history/bitcoin").json()
    assert {row["day"]: (row["source"], Decimal(row["close"])) for row in history["data"]} == {
        day.isoformat(): value for day, value in expected.items()
    }
    daily = get(pipeline_api, "/api/v1/market/daily/bitcoin", start="2024-04-20", end="2024-05-02").json()
    assert [row["day"] for row in daily["data"]] == [
        (date(2024, 4, 20) + timedelta(days=i)).isoformat() for i in range(13)
    ]
    last = daily["data"][-1]
    closes = [expected[date(2024, 5, 2) - timedelta(days=i)][1] for i in range(7)]
    assert Decimal(last["ma_7d"]) == (sum(closes) / 7).quantize(Decimal("1e-12"), ROUND_HALF_UP)
    greed = {row["day"].isoformat(): row["value"] for row in pipeline_api.planted.fear_greed}
    assert all(row["fear_greed_value"] == greed[row["day"]] for row in daily["data"])
    assert_error(get(pipeline_api, "/api/v1/history/dogecoinx"), 404, "unknown coin")
    assert_error(get(pipeline_api, "/api/v1/history/bitcoin", start="2024-05-02", end="2024-05-01"), 422, "start")
    # as_of: the snapshot named in the answer reproduces it
    snapshot = history["served_from"][0]["snapshot_id"]
    assert get(pipeline_api, "/api/v1/history/bitcoin", as_of=str(snapshot)).json()["data"] == history["data"]


def test_market_overview_and_fear_greed(pipeline_api: PipelineApi) -> None:
    planted = pipeline_api.planted
    expected = _daily_closes(planted)
    overview = get(pipeline_api, "/api/v1/market/overview").json()
    coins = {row["coin_id"]: row for row in overview["data"]}
    assert set(coins) == {"bitcoin", "ethereum"}
    btc = coins["bitcoin"]
    assert btc["day"] == "2024-05-02" and Decimal(btc["close"]) == expected[date(2024, 5, 2)][1]
    assert btc["simple_return"] == pytest.approx(
        float(expected[date(2024, 5, 2)][1] / expected[date(2024, 5, 1)][1] - 1)
    )
    assert btc["base_asset"] == "BTC"
    newest = max(planted.fear_greed, key=lambda row: row["day"])
    assert overview["fear_greed"]["day"] == newest["day"].isoformat()
    assert overview["fear_greed"]["value"] == newest["value"]
    sentiment = get(pipeline_api, "/api/v1/sentiment/fear-greed", start="2024-04-01").json()
    assert [(r["day"], r["value"], r["classification"]) for r in sentiment["data"]] == [
        (r["day"].isoformat(), r["value"], r["classification"])
        for r in planted.fear_greed
        if r["day"] >= date(2024, 4, 1)
    ]
    assert all(r["sentiment_score"] == pytest.approx((r["value"] - 50) / 50) for r in sentiment["data"])


def test_futures_daily_equals_a_recomputation(pipeline_api: PipelineApi) -> None:
    planted = pipeline_api.planted
    futures = _bars_of(planted, "BTCUSDT", "usdm_futures")
    spot_close = [m for m in _bars_of(planted, "BTCUSDT", "spot") if m["minute"].date() == date(2024, 5, 1)][-1][
        "close"
    ]
    [row] = get(pipeline_api, "/api/v1/futures/daily/BTCUSDT").json()["data"]
    assert row["day"] == "2024-05-01"
    assert Decimal(row["open"]) == futures[0]["open"] and Decimal(row["close"]) == futures[-1]["close"]
    assert Decimal(row["volume"]) == sum(m["volume"] for m in futures)
    assert row["trade_count"] == sum(m["trade_count"] for m in futures)
    assert Decimal(row["spot_close"]) == spot_close and Decimal(row["basis"]) == futures[-1]["close"] - spot_close
    assert_error(get(pipeline_api, "/api/v1/futures/daily/ETHUSDT"), 404, "unknown symbol")


def test_quality_checks_and_completeness(pipeline_api: PipelineApi) -> None:
    planted = pipeline_api.planted
    every = get(pipeline_api, "/api/v1/quality/checks").json()
    newest_first = sorted(planted.checks, key=lambda c: c["checked_at"], reverse=True)
    assert [c["run_id"] for c in every["data"]] == [c["run_id"] for c in newest_first]
    failed = get(pipeline_api, "/api/v1/quality/checks", outcome="failed").json()
    assert {c["check_name"] for c in failed["data"]} == {
        c["check_name"] for c in planted.checks if c["outcome"] == "failed"
    }
    one = get(pipeline_api, "/api/v1/quality/checks", asset="gold/fct_ohlcv_1h", severity="ERROR", limit=1).json()
    assert [c["run_id"] for c in one["data"]] == ["run-20"]
    since = get(pipeline_api, "/api/v1/quality/checks", start=iso(newest_first[1]["checked_at"])).json()
    assert since["count"] == 2
    days = {r["day"]: r for r in get(pipeline_api, "/api/v1/quality/completeness/BTCUSDT").json()["data"]}
    assert days["2024-05-01"]["complete"] is True and days["2024-05-01"]["incomplete_minutes"] == 0
    assert days["2024-05-02"]["complete"] is False and days["2024-05-02"]["agg_trades_missing"] == 3
    minutes = {m["minute"] for m in _bars_of(planted, "BTCUSDT", "spot") if m["minute"].date() == date(2024, 5, 2)}
    assert days["2024-05-02"]["minutes_with_bars"] == len(minutes)


# --- schemathesis: every check, against the running API's own OpenAPI document -------------------------------------

SCHEMATHESIS_CONFIG = """
# The routes answer 422 to some schema-valid requests on purpose: an inverted or empty time range (start >= end)
# is a relation between two parameters that OpenAPI cannot express. 404 is an unknown symbol, coin or snapshot.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "422"]
"""


@pytest.mark.parametrize("lake", ["empty_api", "pipeline_api"])
def test_schemathesis_finds_no_failure(lake: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = request.getfixturevalue(lake)
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    st = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(st), "--config-file", str(config), "run", f"{server.base_url}/openapi.json", "--checks", "all",
         "--max-examples", "40", "--seed", "12", "--workers", "1", "--request-timeout", "10"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,  # its .schemathesis cache stays there
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failures" not in result.stdout.split("SUMMARY")[-1], result.stdout[-4000:]
