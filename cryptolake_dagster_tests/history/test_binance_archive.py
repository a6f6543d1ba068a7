"""``cryptolake import archive``: Binance kline archives generated here in the official layout, through the real CLI.

Spot files without a header in milliseconds, a USD-M file with a header, a spot file of 2025 in microseconds, a file
whose .CHECKSUM does not match (refused by name), a replaced file, and the same files from a mirror over HTTP.
"""

from __future__ import annotations

import hashlib
import http.server
import random
import subprocess
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path

from cryptolake.tables import BRONZE_BINANCE_KLINES
from cryptolake_dagster_tests.history.import_cli import run_import, table_rows

HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
)
VALUES = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_base_volume",
          "taker_buy_quote_volume")  # fmt: skip


def _klines(start: datetime, step: timedelta, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    price = Decimal(rng.randint(20_000, 60_000))
    bars = []
    for i in range(count):
        close = price + Decimal(rng.randint(-100_000, 100_000)) / 100
        high, low = (
            max(price, close) + Decimal(rng.randint(0, 9_999)) / 100,
            min(price, close) - Decimal(rng.randint(0, 9_999)) / 100,
        )
        volume = Decimal(rng.randint(1, 10**12)) / 10**8
        buy = (volume * Decimal(rng.randint(0, 100)) / 100).quantize(Decimal("0.00000001"))
        bars.append({
            "open_time": start + step * i, "close_time": start + step * (i + 1) - timedelta(milliseconds=1),
            "open": price, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": (volume * close).quantize(Decimal("0.00000001")), "trades": rng.randint(1, 10**6),
            "taker_buy_base_volume": buy, "taker_buy_quote_volume": (buy * close).quantize(Decimal("0.00000001")),
        })  # fmt: skip
        price = close
    return bars


def _line(bar: dict, unit: int) -> str:
    def t(moment: datetime, end: bool) -> int:
        value = int(moment.timestamp() * 1000) * unit
        return value + (unit - 1 if end else 0)  # a µs close time ends at ...999999, as Binance writes it

    return ",".join(
        str(v)
        for v in (
            t(bar["open_time"], False), f"{bar['open']:.8f}", f"{bar['high']:.8f}", f"{bar['low']:.8f}",
            f"{bar['close']:.8f}", f"{bar['volume']:.8f}", t(bar["close_time"], True), f"{bar['quote_volume']:.8f}",
            bar["trades"], f"{bar['taker_buy_base_volume']:.8f}", f"{bar['taker_buy_quote_volume']:.8f}", 0,
        )
    )  # fmt: skip


def _write(root: Path, market_dir: str, frequency: str, symbol: str, interval: str, period: str, bars: list[dict],
           *, header: bool = False, unit: int = 1, checksum: str | None = "ok") -> Path:  # fmt: skip
    folder = root / "data" / market_dir / frequency / "klines" / symbol / interval
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{symbol}-{interval}-{period}"
    path = folder / f"{name}.zip"
    text = "\n".join(([HEADER] if header else []) + [_line(b, unit) for b in bars]) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"{name}.csv", text)
    if checksum is not None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if checksum == "ok" else "0" * 64
        (folder / f"{name}.zip.CHECKSUM").write_text(f"{digest}  {name}.zip\n")
    return path


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess:
    return run_import(state, "archive", *args)


def _table(state: Path) -> dict[tuple, dict]:
    rows = table_rows(state, BRONZE_BINANCE_KLINES.identifier)
    return {(r["market"], r["symbol"], r["interval"], r["open_time"]): r for r in rows}


def _values(rows: dict[tuple, dict]) -> dict[tuple, dict]:
    return {key: {c: row[c] for c in ("close_time", *VALUES, "source")} for key, row in rows.items()}


def _expected(market: str, symbol: str, interval: str, bars: list[dict]) -> dict[tuple, dict]:
    return {
        (market, symbol, interval, b["open_time"]): {"close_time": b["close_time"], **{c: b[c] for c in VALUES},
                                                      "source": "archive"}
        for b in bars
    }  # fmt: skip


def test_archives_import_exactly_refuse_a_bad_checksum_and_converge(tmp_path: Path) -> None:
    root, state = tmp_path / "mirror", tmp_path / "state"
    spot = _klines(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1), 31, seed=1)
    futures = _klines(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1), 31, seed=2)
    micros = _klines(datetime(2025, 1, 1, tzinfo=UTC), timedelta(hours=1), 24, seed=3)
    _write(root, "spot", "monthly", "BTCUSDT", "1d", "2024-01", spot)
    _write(root, "futures/um", "monthly", "BTCUSDT", "1d", "2024-01", futures, header=True)
    _write(root, "spot", "daily", "ETHUSDT", "1h", "2025-01-01", micros, unit=1000)
    _write(root, "spot", "monthly", "ETHUSDT", "1d", "2024-02", spot[:29], checksum="bad")

    first = _cli(state, "--root", str(root))
    assert first.returncode == 1, first.stdout + first.stderr  # one file refused, the others imported
    assert "ETHUSDT-1d-2024-02.zip: not imported: ETHUSDT-1d-2024-02.zip: SHA-256" in first.stderr
    assert "3 of 4 files imported, 1 refused" in first.stdout
    assert "import archive: 86 klines of 3 files written to bronze.binance_klines" in first.stdout  # one commit
    expected = {
        **_expected("spot", "BTCUSDT", "1d", spot),
        **_expected("usdm_futures", "BTCUSDT", "1d", futures),
        **_expected("spot", "ETHUSDT", "1h", micros),
    }
    assert _values(_table(state)) == expected

    again = _cli(state, "--root", str(root))
    assert again.returncode == 1
    assert _values(_table(state)) == expected  # nothing doubled

    # Binance replaces a file (a corrected close, a bar fewer): importing it again converges to the new file.
    replaced = [dict(b) for b in spot[:-1]]
    replaced[4]["close"] = replaced[4]["high"]
    _write(root, "spot", "monthly", "BTCUSDT", "1d", "2024-01", replaced)
    (root / "data/spot/monthly/klines/ETHUSDT/1d/ETHUSDT-1d-2024-02.zip").unlink()
    third = _cli(state, "--root", str(root))
    assert third.returncode == 0, third.stderr
    expected = {**{k: v for k, v in expected.items() if k[:3] != ("spot", "BTCUSDT", "1d")},
                **_expected("spot", "BTCUSDT", "1d", replaced)}  # fmt: skip
    assert _values(_table(state)) == expected

    # The same file from a mirror over HTTP: the same rows (its source_url is the URL).
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        mirrored = _cli(state, "--base-url", base, "--symbols", "BTCUSDT", "--intervals", "1d", "--months", "2024-01")
    finally:
        server.shutdown()
    assert mirrored.returncode == 0, mirrored.stderr
    rows = _table(state)
    assert _values(rows) == expected
    btc = [r for k, r in rows.items() if k[:3] == ("spot", "BTCUSDT", "1d")]
    assert {r["source_url"] for r in btc} == {f"{base}/data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2024-01.zip"}
