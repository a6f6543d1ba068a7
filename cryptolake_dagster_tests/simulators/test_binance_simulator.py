"""Tests of the local Binance exchange simulator: a real server on a free port, a real ``websockets`` client and
real HTTP requests."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from simulators.binance import Faults, SimulatorHandle, SimulatorServer, SyntheticMarket, run_in_thread

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = (REPO_ROOT / ".." / "shared" / "samples").resolve()
US_SAMPLE = SAMPLES / "binance_us_spot_ws.ndjson"

SPOT_KEYS = ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
FUTURES_KEYS = ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"]
HTTP_TIMEOUT = 5


@contextmanager
def simulator(**kwargs: Any) -> Iterator[SimulatorHandle]:
    kwargs.setdefault("port", 0)
    handle = run_in_thread(**kwargs)
    try:
        yield handle
    finally:
        handle.stop()


async def _collect(url: str, count: int, timeout: float = 8.0, idle: float | None = None) -> list[str | bytes]:
    """Receive ``count`` messages (or until ``idle`` seconds pass without one, if given)."""
    out: list[str | bytes] = []
    async with connect(url, open_timeout=5, close_timeout=2) as ws:
        deadline = time.monotonic() + timeout
        while len(out) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                out.append(await asyncio.wait_for(ws.recv(), timeout=min(remaining, idle or remaining)))
            except TimeoutError:
                break
    return out


def collect(url: str, count: int, timeout: float = 8.0, idle: float | None = None) -> list[str | bytes]:
    return asyncio.run(_collect(url, count, timeout, idle))


def get(url: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params, timeout=HTTP_TIMEOUT)


def by_symbol_ids(messages: list[dict[str, Any]]) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = defaultdict(list)
    for m in messages:
        ids[m["data"]["s"]].append(m["data"]["a"])
    return ids


# ---------------------------------------------------------------------------------------------- message shapes


def test_spot_combined_stream_shape_and_sequential_ids() -> None:
    with simulator(symbols=("BTCUSDT", "ETHUSDT"), rate=0, max_trades=200, wait_for_subscriber=True) as sim:
        raw = collect(f"{sim.url}/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade", 200)
        assert len(raw) == 200
        msgs = [json.loads(m) for m in raw]
        for m in msgs:
            assert list(m) == ["stream", "data"]
            assert m["stream"] == f"{m['data']['s'].lower()}@aggTrade"
            data = m["data"]
            assert list(data) == SPOT_KEYS
            assert data["e"] == "aggTrade" and data["M"] is True and isinstance(data["m"], bool)
            assert 1 <= data["l"] - data["f"] + 1 <= 5
            assert data["E"] >= data["T"]
            # Spot prints 8 decimals; values are exact decimals.
            for key in ("p", "q"):
                assert isinstance(data[key], str) and len(data[key].split(".")[1]) == 8
                assert Decimal(data[key]) > 0
        ids = by_symbol_ids(msgs)
        assert set(ids) == {"BTCUSDT", "ETHUSDT"}
        for seq in ids.values():
            assert seq == list(range(seq[0], seq[0] + len(seq)))
        # raw trade ids advance without gaps or overlaps per symbol
        for sym in ids:
            datas = [m["data"] for m in msgs if m["data"]["s"] == sym]
            for prev, cur in itertools.pairwise(datas):
                assert cur["f"] == prev["l"] + 1
        assert sim.emitted_count() == 200


def test_futures_shape_and_paths() -> None:
    with simulator(market="usdm_futures", symbols=("BTCUSDT",), rate=0, max_trades=50, wait_for_subscriber=True) as sim:
        msgs = [json.loads(m) for m in collect(f"{sim.url}/stream?streams=btcusdt@aggTrade", 50)]
        assert len(msgs) == 50
        for m in msgs:
            assert list(m["data"]) == FUTURES_KEYS
            assert "M" not in m["data"]
            assert len(m["data"]["p"].split(".")[1]) == 2  # futures: the symbol's own precision
        rest = get(f"{sim.rest_url}/fapi/v1/aggTrades", symbol="BTCUSDT", fromId=msgs[0]["data"]["a"], limit=1000)
        assert rest.status_code == 200
        rows = rest.json()
        assert [list(r) for r in rows[:1]] == [["a", "p", "q", "f", "l", "T", "m"]]
        assert rows == [{k: m["data"][k] for k in ("a", "p", "q", "f", "l", "T", "m")} for m in msgs]
        assert get(f"{sim.rest_url}/api/v3/aggTrades", symbol="BTCUSDT").status_code == 404
        klines = get(f"{sim.rest_url}/fapi/v1/klines", symbol="BTCUSDT", interval="1m")
        assert klines.status_code == 200 and sum(k[8] for k in klines.json()) == sum(r["l"] - r["f"] + 1 for r in rows)


def test_raw_ws_stream_sends_data_only() -> None:
    with simulator(symbols=("ETHUSDT",), rate=0, max_trades=5, wait_for_subscriber=True) as sim:
        msgs = [json.loads(m) for m in collect(f"{sim.url}/ws/ethusdt@aggTrade", 5)]
        assert [list(m) for m in msgs] == [SPOT_KEYS] * 5
        assert [m["a"] for m in msgs] == [t["a"] for t in sim.history("ETHUSDT")]


def test_subscribe_request_and_client_ping() -> None:
    with simulator(symbols=("BTCUSDT", "ETHUSDT"), rate=200, seed=3) as sim:

        async def scenario() -> tuple[Any, Any, list[dict[str, Any]]]:
            async with connect(f"{sim.url}/stream", open_timeout=5) as ws:
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}))
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                replies: dict[int, Any] = {}
                trades: list[dict[str, Any]] = []
                while len(replies) < 2 or len(trades) < 5:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if "id" in msg:
                        replies[msg["id"]] = msg
                    else:
                        trades.append(msg)
                return replies[1], replies[2], trades

        sub_reply, list_reply, trades = asyncio.run(scenario())
        assert sub_reply == {"result": None, "id": 1}
        assert list_reply == {"result": ["btcusdt@aggTrade"], "id": 2}
        assert {t["stream"] for t in trades} == {"btcusdt@aggTrade"}


# ---------------------------------------------------------------------------------------------- REST


def test_rest_history_includes_trades_skipped_on_websocket() -> None:
    faults = Faults(seed=5, skip_every=10, skip_prob=0.05)
    with simulator(symbols=("BTCUSDT",), rate=0, max_trades=300, wait_for_subscriber=True, faults=faults) as sim:
        raw = collect(f"{sim.url}/stream?streams=btcusdt@aggTrade", 300, idle=1.0)
        ws_data = [json.loads(m)["data"] for m in raw]
        skipped = sim.health()["faults"]["skip"]
        assert skipped >= 30
        assert len(ws_data) == 300 - skipped
        first_id = sim.history("BTCUSDT")[0]["a"]
        rest = get(f"{sim.rest_url}/api/v3/aggTrades", symbol="BTCUSDT", fromId=first_id, limit=1000)
        assert rest.status_code == 200
        rows = rest.json()
        assert rows == sim.history("BTCUSDT")
        assert [r["a"] for r in rows] == list(range(first_id, first_id + 300))
        by_id = {r["a"]: r for r in rows}
        for d in ws_data:  # every WS trade is in REST with identical values
            assert by_id[d["a"]] == {k: d[k] for k in ("a", "p", "q", "f", "l", "T", "m", "M")}
        missing = sorted(set(by_id) - {d["a"] for d in ws_data})
        assert len(missing) == skipped
        # gap repair: fromId at the first missing id returns it first
        gap = get(f"{sim.rest_url}/api/v3/aggTrades", symbol="BTCUSDT", fromId=missing[0], limit=3).json()
        assert [r["a"] for r in gap] == [missing[0], missing[0] + 1, missing[0] + 2]


def test_rest_errors_limits_and_weight_header() -> None:
    with simulator(symbols=("BTCUSDT",), rate=0, max_trades=1200) as sim:
        sim.wait_for_emitted(1200)
        url = f"{sim.rest_url}/api/v3/aggTrades"
        bad = get(url, symbol="DOGEBTC")
        assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}
        assert get(url).json()["code"] == -1102
        assert get(url, symbol="BTCUSDT", limit=1001).status_code == 400
        default = get(url, symbol="BTCUSDT")
        assert len(default.json()) == 500
        history = sim.history("BTCUSDT")
        assert default.json() == history[-500:]  # no fromId/time: the most recent trades
        assert len(get(url, symbol="BTCUSDT", fromId=history[0]["a"], limit=1000).json()) == 1000
        t_mid = history[600]["T"]
        windowed = get(url, symbol="BTCUSDT", startTime=t_mid, endTime=t_mid).json()
        assert windowed and all(r["T"] == t_mid for r in windowed)
        w1 = int(get(url, symbol="BTCUSDT", limit=1).headers["X-MBX-USED-WEIGHT-1M"])
        w2 = int(get(url, symbol="BTCUSDT", limit=1).headers["X-MBX-USED-WEIGHT-1M"])
        assert w1 > 0 and w2 in (w1 + 2, 2)  # weight 2 per call (a new minute resets the count)
        assert get(f"{sim.rest_url}/api/v3/klines", symbol="BTCUSDT", interval="7m").json()["code"] == -1120
        health = get(f"{sim.rest_url}/health")
        assert health.status_code == 200 and health.json()["trades_emitted"] == 1200


def test_klines_match_decimal_recomputation() -> None:
    with simulator(symbols=("BTCUSDT",), rate=0, max_trades=400, price_sigma=0.001) as sim:
        sim.wait_for_emitted(400)
        rows = get(
            f"{sim.rest_url}/api/v3/aggTrades", symbol="BTCUSDT", fromId=sim.history("BTCUSDT")[0]["a"], limit=1000
        ).json()
        assert len(rows) == 400
        for interval, ms in (("1m", 60_000), ("1h", 3_600_000), ("1d", 86_400_000)):
            got = get(f"{sim.rest_url}/api/v3/klines", symbol="BTCUSDT", interval=interval, limit=1000).json()
            expected: dict[int, list[Any]] = {}
            for r in rows:
                p, q = Decimal(r["p"]), Decimal(r["q"])
                start = r["T"] - r["T"] % ms
                bar = expected.setdefault(
                    start, [start, p, p, p, p, Decimal(0), start + ms - 1, Decimal(0), 0, Decimal(0), Decimal(0), "0"]
                )
                bar[2], bar[3], bar[4] = max(bar[2], p), min(bar[3], p), p
                bar[5] += q
                bar[7] += p * q
                bar[8] += r["l"] - r["f"] + 1
                if not r["m"]:
                    bar[9] += q
                    bar[10] += p * q
            want = [[f"{v:.8f}" if isinstance(v, Decimal) else v for v in b] for b in expected.values()]
            assert got == want, interval
            for k in got:
                assert len(k) == 12
            # products of an exact price (2 dp) and quantity (5 dp) need no rounding at 8 dp
            assert sum(Decimal(k[7]) for k in got) == sum(Decimal(r["p"]) * Decimal(r["q"]) for r in rows)


# ---------------------------------------------------------------------------------------------- faults


def test_duplicates_and_malformed_messages_are_observed() -> None:
    faults = Faults(seed=11, duplicate_every=7, malformed_every=9)
    with simulator(symbols=("BTCUSDT",), rate=0, max_trades=100, wait_for_subscriber=True, faults=faults) as sim:
        raw = collect(f"{sim.url}/stream?streams=btcusdt@aggTrade", 1000, idle=1.0)
        valid: list[int] = []
        malformed: list[str | bytes] = []
        for m in raw:
            try:
                obj = json.loads(m) if isinstance(m, str) else None
                data = obj["data"] if isinstance(obj, dict) else None
                if not isinstance(data, dict) or set(data) != set(SPOT_KEYS) or not isinstance(data["p"], str):
                    raise ValueError
                if not isinstance(data["a"], int):
                    raise ValueError
                valid.append(data["a"])
            except (ValueError, KeyError, TypeError):
                malformed.append(m)
        health = sim.health()["faults"]
        assert health["duplicate"] == 100 // 7 and health["malformed"] == 100 // 9
        assert len(malformed) == health["malformed"]
        assert sum(health["malformed_by_kind"].values()) == health["malformed"]
        assert len(valid) == 100 + health["duplicate"]
        assert len(set(valid)) == 100
        assert sorted(set(valid)) == [t["a"] for t in sim.history("BTCUSDT")]


def test_out_of_order_swaps_adjacent_messages() -> None:
    with simulator(
        symbols=("BTCUSDT",), rate=0, max_trades=40, wait_for_subscriber=True, faults=Faults(out_of_order_every=10)
    ) as sim:
        ids = [json.loads(m)["a"] for m in collect(f"{sim.url}/ws/btcusdt@aggTrade", 40)]
        assert sorted(ids) == [t["a"] for t in sim.history("BTCUSDT")]
        inversions = [i for i in range(1, len(ids)) if ids[i] < ids[i - 1]]
        assert len(inversions) == sim.health()["faults"]["out_of_order"] == 3


def test_drop_connection_every_n_messages() -> None:
    with simulator(symbols=("BTCUSDT",), rate=500, faults=Faults(drop_every=20)) as sim:

        async def scenario() -> int:
            got = 0
            async with connect(f"{sim.url}/stream?streams=btcusdt@aggTrade", open_timeout=5) as ws:
                with pytest.raises(ConnectionClosedError):
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                        got += 1
            return got

        assert asyncio.run(scenario()) == 19
        assert sim.health()["faults"]["drop"] == 1


def test_stall_pauses_without_closing() -> None:
    with simulator(
        symbols=("BTCUSDT",),
        rate=0,
        max_trades=3,
        wait_for_subscriber=True,
        faults=Faults(stall_every=2, stall_seconds=0.6),
    ) as sim:

        async def scenario() -> list[float]:
            stamps = []
            async with connect(f"{sim.url}/ws/btcusdt@aggTrade", open_timeout=5) as ws:
                for _ in range(3):
                    await asyncio.wait_for(ws.recv(), 5)
                    stamps.append(time.monotonic())
            return stamps

        stamps = asyncio.run(scenario())
        assert stamps[1] - stamps[0] >= 0.5
        assert sim.health()["faults"]["stall"] == 1


def test_raw_frames_are_sent_verbatim_between_trades_and_never_faulted() -> None:
    big = '{"pad":"' + "x" * (2 << 20) + '"}'  # a 2 MiB frame
    frames: list[str | bytes] = ['{"stream":', b"\xff\xfe{not utf-8", "", big, '["x"]']
    with simulator(symbols=("BTCUSDT", "ETHUSDT"), rate=200, faults=Faults(duplicate_every=1)) as sim:

        async def scenario() -> list[str | bytes]:
            got: list[str | bytes] = []
            url = f"{sim.url}/stream?streams=btcusdt@aggTrade"
            async with connect(url, open_timeout=5, max_size=None) as ws:
                while len(got) < 6:
                    got.append(await asyncio.wait_for(ws.recv(), 5))
                # Blocks this client's loop briefly; the frames queue up behind the trades already sent.
                assert sim.publish_raw(frames) == len(frames)
                assert sim.publish_raw(['{"only":"eth"}'], stream="ethusdt@aggTrade") == 1
                assert sim.publish_raw(["{}"], stream="btcusdt@aggTrade") == 1
                while sum(isinstance(m, str) and m.startswith('{"stream":"btcusdt') for m in got) < 20:
                    got.append(await asyncio.wait_for(ws.recv(), 5))
            return got

        got = asyncio.run(scenario())
        health = sim.health()
    injected = [m for m in got if not (isinstance(m, str) and m.startswith('{"stream":"btcusdt@aggTrade","data":'))]
    assert injected == [*frames, "{}"]  # exact text and frame type (bytes = binary frame), in order, once each
    positions = [i for i, m in enumerate(got) if any(m is f or m == f for f in injected)]
    assert 6 <= positions[0] and positions[-1] < len(got) - 1  # trades before and after them
    ids = [json.loads(m)["data"]["a"] for m in got if m not in injected]
    assert ids == [a for a in sorted(set(ids)) for _ in (0, 1)]  # every trade doubled by the fault, none lost
    assert health["raw_published"] == len(frames) + 2 and health["trades_emitted"] >= 10
    with pytest.raises(TypeError):
        sim.server.publish_raw(123)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- replay


def _sample_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        pytest.skip(f"recorded sample not found at {path} (expected ../shared/samples next to the repo)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_replay_emits_exactly_the_recorded_messages() -> None:
    lines = _sample_lines(US_SAMPLE)
    agg = [ln["raw"] for ln in lines if '"e":"aggTrade"' in ln["raw"]]
    assert len(agg) == 11
    with simulator(mode="replay", replay_file=US_SAMPLE, speed=0) as sim:
        got = collect(f"{sim.url}/stream?streams=omgbusd@aggTrade", 100, idle=1.0)
        assert got == agg  # verbatim texts, file order
        rest = get(f"{sim.rest_url}/api/v3/aggTrades", symbol="OMGBUSD", fromId=0, limit=1000).json()
        keys = ("a", "p", "q", "f", "l", "T", "m", "M")
        assert rest == [{k: json.loads(r)["data"][k] for k in keys} for r in agg]
        assert get(f"{sim.rest_url}/api/v3/aggTrades", symbol="BTCUSDT").json()["code"] == -1121


def test_replay_passes_klines_through_and_paces_by_received_at() -> None:
    lines = _sample_lines(US_SAMPLE)
    span = lines[-1]["received_at"] - lines[0]["received_at"]
    speed = 25.0
    with simulator(mode="replay", replay_file=US_SAMPLE, speed=speed) as sim:
        started = time.monotonic()
        got = collect(f"{sim.url}/stream?streams=omgbusd@aggTrade/omgbusd@kline_1m", len(lines), timeout=10)
        elapsed = time.monotonic() - started
        assert got == [ln["raw"] for ln in lines]
        assert elapsed >= span / speed * 0.9
        assert sim.emitted_count() == 11


# ---------------------------------------------------------------------------------------------- model / API


def test_synthetic_market_is_seeded_and_exact() -> None:
    a = SyntheticMarket(["BTCUSDT", "ETHUSDT", "ABCUSDT"], seed=9)
    b = SyntheticMarket(["BTCUSDT", "ETHUSDT", "ABCUSDT"], seed=9)
    ta = [a.next_trade(1_700_000_000_000) for _ in range(500)]
    tb = [b.next_trade(1_700_000_000_000) for _ in range(500)]
    assert ta == tb
    assert 1 <= a.spec("ABCUSDT").start_price <= 100
    for t in ta:
        p, q = Decimal(t.price), Decimal(t.qty)
        assert p > 0 and q > 0
        assert (p * q) == (p * q).quantize(Decimal("1e-8"))  # never needs more than 8 decimals
    other = SyntheticMarket(["BTCUSDT"], seed=10)
    assert other.next_trade(0).agg_id != SyntheticMarket(["BTCUSDT"], seed=9).first_agg_id("BTCUSDT")


def test_async_server_context_manager_and_max_trades() -> None:
    async def scenario() -> tuple[int, int]:
        async with SimulatorServer(symbols=("SOLUSDT",), rate=1000, max_trades=25) as server:
            assert server.port > 0
            for _ in range(200):
                if server.feed_done:
                    break
                await asyncio.sleep(0.01)
            return server.trades_emitted, len(server.trades("SOLUSDT"))

    assert asyncio.run(scenario()) == (25, 25)


def test_cli_help_and_ready_line() -> None:
    help_out = subprocess.run(
        [sys.executable, "-m", "simulators.binance", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for flag in ("--market", "--mode", "--replay-file", "--rate", "--seed", "--skip-prob", "--malformed-kinds"):
        assert flag in help_out
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.binance", "--port", "0", "--rate", "50", "--progress-interval", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("simulator ready ws://127.0.0.1:")
        rest_url = line.split()[-1]
        assert get(f"{rest_url}/health").json()["status"] == "ok"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_unknown_ws_path_is_rejected() -> None:
    with simulator(symbols=("BTCUSDT",), rate=1) as sim:

        async def scenario() -> None:
            async with connect(f"{sim.url}/nope", open_timeout=5):
                pass

        with pytest.raises(Exception) as excinfo:
            asyncio.run(scenario())
        assert "404" in str(excinfo.value)
        assert not isinstance(excinfo.value, ConnectionClosed)


def test_pause_stops_the_feed_and_resume_restarts_it() -> None:
    with simulator(symbols=("BTCUSDT",), rate=200, seed=3) as sim:
        time.sleep(0.5)
        paused = get(f"{sim.rest_url}/simulator/pause").json()
        assert paused["paused"] is True
        time.sleep(0.2)  # a trade already due may still be published
        frozen = sim.emitted_count()
        time.sleep(1.0)
        assert sim.emitted_count() == frozen  # no trade is generated while paused
        assert get(f"{sim.rest_url}/health").json()["paused"] is True
        assert get(f"{sim.rest_url}/simulator/resume").json()["paused"] is False
        time.sleep(1.0)
        resumed = sim.emitted_count() - frozen
        assert 20 < resumed < 600  # about the rate again, no burst of the paused second
