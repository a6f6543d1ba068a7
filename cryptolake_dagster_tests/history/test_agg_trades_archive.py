"""``cryptolake import archive``: Binance aggTrades archives generated here in the official layout, through the CLI.

A spot file without a header in milliseconds (8 columns, Binance's invalid-trade markers among the rows, a row with
a negative price), a USD-M file with a header (7 columns), a spot file of 2025 in microseconds, a file whose
.CHECKSUM does not match (refused by name) and a replaced file. The expected rows are computed here from the
generated trades, independently of the connector's normalizer.
"""

from __future__ import annotations

import hashlib
import random
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cryptolake.tables import BRONZE_TRADES_BACKFILL
from cryptolake_dagster_tests.history.import_cli import run_import, table_rows

FUTURES_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
COMPARED = ("market", "symbol", "agg_trade_id", "first_trade_id", "last_trade_id", "price", "quantity",
            "quote_quantity", "side", "is_buyer_maker", "trade_time", "event_time", "source", "origin", "exchange",
            "base_asset", "quote_asset", "coin_id", "schema_version")  # fmt: skip


def generate_trades(start: datetime, count: int, seed: int, first_id: int = 1_000) -> list[dict]:
    """``count`` aggregate trades from ``start``, ids consecutive, a few raw trades each, times increasing."""
    rng = random.Random(seed)
    trades, raw, moment, price = [], first_id * 4, start, Decimal(rng.randint(20_000, 60_000))
    for agg_id in range(first_id, first_id + count):
        raws = rng.randint(1, 4)
        moment += timedelta(milliseconds=rng.randint(0, 900), microseconds=rng.randint(0, 999))
        price += Decimal(rng.randint(-500, 500)) / 100
        trades.append({
            "a": agg_id, "p": price, "q": Decimal(rng.randint(1, 10**9)) / 10**8, "f": raw, "l": raw + raws - 1,
            "time": moment, "m": rng.random() < 0.5,
        })  # fmt: skip
        raw += raws
    return trades


def epoch_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def agg_trades_line(trade: dict, unit: int, best_match: bool) -> str:
    stamp = epoch_ms(trade["time"]) * unit + (trade["time"].microsecond % 1000 if unit == 1000 else 0)
    cells = [trade["a"], f"{trade['p']:.8f}", f"{trade['q']:.8f}", trade["f"], trade["l"], stamp, trade["m"]]
    return ",".join(str(c) for c in cells + ([True] if best_match else []))


def write_agg_trades_file(root: Path, market_dir: str, symbol: str, day: str, lines: list[str], *,
                          header: bool = False, checksum: str = "ok") -> str:  # fmt: skip
    """Write a daily aggTrades zip (and its .CHECKSUM) in the official layout; return its layout path."""
    relative = f"data/{market_dir}/daily/aggTrades/{symbol}/{symbol}-aggTrades-{day}.zip"
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(([FUTURES_HEADER] if header else []) + lines) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(path.name.replace(".zip", ".csv"), text)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if checksum == "ok" else "f" * 64
    path.with_name(path.name + ".CHECKSUM").write_text(f"{digest}  {path.name}\n")
    return relative


def expected_rows(trades: list[dict], market: str, symbol: str, origin: str, coin_id: str | None) -> dict:
    rows = {}
    for t in trades:
        ms_time = t["time"].replace(microsecond=t["time"].microsecond // 1000 * 1000)  # stored in milliseconds
        rows[(market, symbol, t["a"])] = {
            "market": market, "symbol": symbol, "agg_trade_id": t["a"], "first_trade_id": t["f"],
            "last_trade_id": t["l"], "price": t["p"], "quantity": t["q"], "quote_quantity": t["p"] * t["q"],
            "side": "sell" if t["m"] else "buy", "is_buyer_maker": t["m"], "trade_time": ms_time,
            "event_time": ms_time, "source": "archive", "origin": origin, "exchange": "binance",
            "base_asset": symbol.removesuffix("USDT"), "quote_asset": "USDT", "coin_id": coin_id,
            "schema_version": 1,
        }  # fmt: skip
    return rows


def backfill_table(state: Path) -> dict[tuple, dict]:
    rows = table_rows(state, BRONZE_TRADES_BACKFILL.identifier)
    keyed = {(r["market"], r["symbol"], r["agg_trade_id"]): {c: r[c] for c in COMPARED} for r in rows}
    assert len(keyed) == len(rows), "an aggregate id landed twice"
    return keyed


def test_agg_trades_archives_import_exactly_drop_markers_refuse_a_bad_checksum_and_converge(tmp_path: Path) -> None:
    root, state = tmp_path / "mirror", tmp_path / "state"
    day = datetime(2024, 3, 1, tzinfo=UTC)
    spot = generate_trades(day + timedelta(hours=1), 400, seed=11)
    futures = generate_trades(day + timedelta(hours=2), 300, seed=12, first_id=77_000)
    micros = generate_trades(datetime(2025, 1, 2, 3, tzinfo=UTC), 200, seed=13, first_id=5_000_000)
    spot_lines = [agg_trades_line(t, 1, True) for t in spot]
    for at, agg_id in ((100, 999_999), (250, 999_998)):  # Binance's invalid-trade markers: p = q = 0, f = l = -1
        spot_lines.insert(at, f"{agg_id},0.00000000,0.00000000,-1,-1,{epoch_ms(spot[at]['time'])},False,True")
    negative = agg_trades_line({**spot[-1], "a": spot[-1]["a"] + 1, "p": Decimal("-1")}, 1, True)
    spot_lines.append(negative)
    spot_path = write_agg_trades_file(root, "spot", "BTCUSDT", "2024-03-01", spot_lines)
    futures_path = write_agg_trades_file(root, "futures/um", "BTCUSDT", "2024-03-01",
                                         [agg_trades_line(t, 1, False) for t in futures], header=True)  # fmt: skip
    micros_path = write_agg_trades_file(root, "spot", "ETHUSDT", "2025-01-02",
                                        [agg_trades_line(t, 1000, True) for t in micros])  # fmt: skip
    write_agg_trades_file(root, "spot", "SOLUSDT", "2024-03-01", spot_lines[:5], checksum="bad")

    first = run_import(state, "archive", "--root", str(root))
    assert first.returncode == 1, first.stdout + first.stderr  # one file refused, the others imported
    assert "SOLUSDT-aggTrades-2024-03-01.zip: not imported: SOLUSDT-aggTrades-2024-03-01.zip: SHA-256" in first.stderr
    assert "3 of 4 files imported, 1 refused" in first.stdout
    assert (
        "400 spot aggTrades (checksum ok); 2 invalid-trade markers dropped; 1 rows refused (non_positive_number x1)"
        in first.stdout
    )
    expected = {
        **expected_rows(spot, "spot", "BTCUSDT", spot_path, "bitcoin"),
        **expected_rows(futures, "usdm_futures", "BTCUSDT", futures_path, "bitcoin"),
        **expected_rows(micros, "spot", "ETHUSDT", micros_path, "ethereum"),
    }
    assert backfill_table(state) == expected

    again = run_import(state, "archive", "--root", str(root))
    assert again.returncode == 1
    assert backfill_table(state) == expected  # nothing doubled

    # Binance replaces a file (a trade fewer, a corrected quantity): importing it again converges to the new file.
    replaced = [dict(t) for t in spot[:-1]]
    replaced[7]["q"] = Decimal("0.5")
    write_agg_trades_file(root, "spot", "BTCUSDT", "2024-03-01", [agg_trades_line(t, 1, True) for t in replaced])
    (root / "data/spot/daily/aggTrades/SOLUSDT/SOLUSDT-aggTrades-2024-03-01.zip").unlink()
    third = run_import(state, "archive", "--root", str(root))
    assert third.returncode == 0, third.stderr
    expected = {**{k: v for k, v in expected.items() if k[:2] != ("spot", "BTCUSDT")},
                **expected_rows(replaced, "spot", "BTCUSDT", spot_path, "bitcoin")}  # fmt: skip
    assert backfill_table(state) == expected
