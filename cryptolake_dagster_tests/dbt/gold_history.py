"""Daily history and 1-minute bars planted in a lakehouse the way the pipeline leaves them (Bronze klines and CSV
rows, Silver CoinGecko / Fear & Greed / 1-minute bars), for the tests that build Gold from them with dbt: a BTC
series with a 15-day gap, an ETH series that starts later, CSV and CoinGecko days that overlap the klines, a day of
our own bars that is whole and one with an aggregate-id hole, and a futures day."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from cryptolake.tables import (
    BRONZE_BINANCE_KLINES,
    BRONZE_OHLCV_CSV,
    SILVER_DAILY_PRICES,
    SILVER_FEAR_GREED,
    SILVER_OHLCV_1M,
)

E8, E12 = Decimal("1e-8"), Decimal("1e-12")
BTC_FIRST, BTC_LAST = date(2023, 1, 1), date(2023, 12, 31)
GAP = (date(2023, 5, 10), date(2023, 5, 24))  # 15 days without any source
ETH_FIRST = date(2023, 6, 15)
CSV_DAYS = (date(2022, 12, 1), date(2023, 1, 5))  # overlaps the klines on Jan 1..5: the klines win there
COINGECKO_ONLY = (date(2022, 11, 25), date(2022, 11, 30))
COINGECKO_OVERLAP = (date(2023, 2, 1), date(2023, 2, 3))  # klines win
TRADES_DAY = date(2023, 12, 30)  # our bars are whole and their trade count is the kline's: ours win
HOLED_DAY = date(2023, 12, 31)  # our bars have an aggregate-id hole: the kline wins
INGESTED = datetime(2024, 1, 2, tzinfo=UTC)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _walk(days: list[date], start: Decimal, rng: random.Random) -> dict[date, dict[str, Decimal]]:
    bars, price = {}, start
    for day in days:
        close = max(Decimal(1), price + Decimal(rng.randint(-200_000, 200_000)) * Decimal("0.01"))
        high = max(price, close) + Decimal(rng.randint(0, 50_000)) * Decimal("0.01")
        low = max(Decimal("0.5"), min(price, close) - Decimal(rng.randint(0, 50_000)) * Decimal("0.01"))
        volume = Decimal(rng.randint(10**8, 10**12)) * E8
        bars[day] = {"open": price, "high": high, "low": low, "close": close, "volume": volume,
                     "quote_volume": (volume * close).quantize(E8), "trades": rng.randint(1000, 10**6)}  # fmt: skip
        price = close
    return bars


def _kline_row(symbol: str, day: date, bar: dict[str, Any], market: str = "spot") -> dict[str, Any]:
    start = at(day)
    return {
        "symbol": symbol, "market": market, "interval": "1d", "open_time": start,
        "close_time": start + timedelta(days=1) - timedelta(milliseconds=1), **{k: bar[k] for k in
        ("open", "high", "low", "close", "volume", "quote_volume", "trades")},
        "taker_buy_base_volume": (bar["volume"] / 2).quantize(E8),
        "taker_buy_quote_volume": (bar["quote_volume"] / 2).quantize(E8), "is_closed": True, "raw": "[]",
        "source_url": "test", "ingested_at": INGESTED, "source": "archive",
    }  # fmt: skip


def _minute_bars(symbol: str, market: str, day: date, rng: random.Random, *, hole_at: int | None = None,
                 agg_id: int = 10_000, raw_id: int = 50_000) -> list[dict]:  # fmt: skip
    """Silver 1-minute bars over three hours of ``day`` with consecutive aggregate and raw ids from the given ones
    (a hole before the first bar at or after minute ``hole_at``: three aggregate ids missing)."""
    bars, price = [], Decimal(rng.randint(20_000, 40_000))
    for i in range(180):
        if rng.random() < 0.2:
            continue  # minutes without trades have no bar
        if hole_at is not None and i >= hole_at:
            agg_id, raw_id, hole_at = agg_id + 3, raw_id + 6, None
        count = rng.randint(1, 4)
        prices = [price + Decimal(rng.randint(-5000, 5000)) * E8 for _ in range(count)]
        quantities = [Decimal(rng.randint(1, 10**8)) * E8 for _ in range(count)]
        sides = [rng.choice(("buy", "sell")) for _ in range(count)]
        volume, quote = sum(quantities), sum(p * q for p, q in zip(prices, quantities, strict=True))
        bars.append({
            "exchange": "binance", "market": market, "symbol": symbol, "minute": at(day) + timedelta(minutes=i),
            "open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1], "volume": volume,
            "quote_volume": quote, "trade_count": 2 * count, "vwap": (quote / volume).quantize(E8, ROUND_HALF_UP),
            "buy_volume": sum(q for q, s in zip(quantities, sides, strict=True) if s == "buy"),
            "sell_volume": sum(q for q, s in zip(quantities, sides, strict=True) if s == "sell"),
            "first_agg_trade_id": agg_id, "last_agg_trade_id": agg_id + count - 1, "built_at": INGESTED,
            "agg_trade_count": count,
            "taker_buy_quote_volume": sum(p * q for p, q, s in zip(prices, quantities, sides, strict=True)
                                          if s == "buy"),
            "first_trade_id": raw_id, "last_trade_id": raw_id + 2 * count - 1,
        })  # fmt: skip
        agg_id, raw_id, price = agg_id + count, raw_id + 2 * count, prices[-1]
    for bar in bars:
        bar["buy_volume"] = Decimal(bar["buy_volume"]).quantize(E8)
        bar["sell_volume"] = Decimal(bar["sell_volume"]).quantize(E8)
    return bars


def _append(catalog: Catalog, identifier: str, rows: list[dict]) -> None:
    table = catalog.load_table(identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def plant_history(catalog: Catalog, seed: int = 5) -> dict[str, Any]:
    """Write the history into the lakehouse of ``catalog``; return what was written (for recomputations)."""
    rng = random.Random(seed)

    btc_days = [d for d in days_between(BTC_FIRST, BTC_LAST) if not GAP[0] <= d <= GAP[1]]
    btc = _walk(btc_days, Decimal(16_500), rng)
    eth = _walk(days_between(ETH_FIRST, BTC_LAST), Decimal(1_700), rng)
    csv = _walk(days_between(*CSV_DAYS), Decimal(17_000), rng)
    spot_bars = _minute_bars("BTCUSDT", "spot", TRADES_DAY, rng)
    holed_bars = _minute_bars(
        "BTCUSDT",
        "spot",
        HOLED_DAY,
        rng,
        hole_at=90,
        agg_id=spot_bars[-1]["last_agg_trade_id"] + 1,
        raw_id=spot_bars[-1]["last_trade_id"] + 1,
    )
    futures_bars = _minute_bars("BTCUSDT", "usdm_futures", TRADES_DAY, rng)
    btc[TRADES_DAY]["trades"] = sum(b["trade_count"] for b in spot_bars)  # the kline counts what we hold
    btc[HOLED_DAY]["trades"] = sum(b["trade_count"] for b in holed_bars) + 6

    klines = [_kline_row("BTCUSDT", d, b) for d, b in btc.items()] + [
        _kline_row("ETHUSDT", d, b) for d, b in eth.items()
    ]
    _append(catalog, BRONZE_BINANCE_KLINES.identifier, klines)
    _append(catalog, BRONZE_OHLCV_CSV.identifier, [
        {"exchange": "bitstamp", "symbol": "BTCUSD", "interval": "1d", "open_time": at(d),
         **{k: b[k] for k in ("open", "high", "low", "close")}, "base_volume": b["volume"],
         "quote_volume": b["quote_volume"], "trade_count": None, "source_file": "Bitstamp_BTCUSD_d.csv",
         "imported_at": INGESTED}
        for d, b in csv.items()
    ])  # fmt: skip
    coingecko = {d: Decimal(rng.randint(15_000_000, 18_000_000)) / 1000 for d in
                 days_between(*COINGECKO_ONLY) + days_between(*COINGECKO_OVERLAP)}  # fmt: skip
    caps = {d: Decimal(rng.randint(10**11, 10**12)) for d in coingecko}
    _append(catalog, SILVER_DAILY_PRICES.identifier, [
        {"coin_id": "bitcoin", "day": d, "price_usd": p, "market_cap_usd": caps[d], "volume_usd": Decimal(10**9),
         "point_time": at(d + timedelta(days=1)), "is_provisional": False, "updated_at": INGESTED}
        for d, p in coingecko.items()
    ])  # fmt: skip
    greed = {d: rng.randint(0, 100) for d in days_between(BTC_FIRST, BTC_LAST)}
    _append(catalog, SILVER_FEAR_GREED.identifier, [
        {"day": d, "value": v, "classification": "Greed" if v > 50 else "Fear", "updated_at": INGESTED}
        for d, v in greed.items()
    ])  # fmt: skip
    _append(catalog, SILVER_OHLCV_1M.identifier, spot_bars + holed_bars + futures_bars)

    holed_minute = next(
        b["minute"] for previous, b in itertools.pairwise(holed_bars)
        if b["first_agg_trade_id"] != previous["last_agg_trade_id"] + 1
    )  # fmt: skip
    return {"btc": btc, "eth": eth, "csv": csv, "coingecko": coingecko, "caps": caps, "greed": greed,
            "minutes": spot_bars + holed_bars + futures_bars, "spot_bars": spot_bars, "futures_bars": futures_bars,
            "holed_minute": holed_minute}  # fmt: skip


def plant_recent_bars(catalog: Catalog, now: datetime, symbol: str = "BTCUSDT", seed: int = 9) -> list[dict]:
    """Three hours of 1-minute bars of ``symbol`` ending at ``now`` (a live-looking chart for the dashboard)."""
    day = now.date()
    bars = _minute_bars(symbol, "spot", day, random.Random(seed))
    shift = (now.replace(second=0, microsecond=0) - timedelta(hours=3)) - at(day)
    for bar in bars:
        bar["minute"] += shift
    _append(catalog, SILVER_OHLCV_1M.identifier, bars)
    return bars
