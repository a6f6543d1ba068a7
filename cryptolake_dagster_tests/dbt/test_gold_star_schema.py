"""The Gold star schema built by a real ``dbt build`` from history planted in a temp lakehouse, every number
recomputed here independently (plain ``Decimal`` for prices and averages, ``math`` / ``statistics`` for returns and
volatility):

* ``fct_market_daily``'s calendar windows over a series with a 15-day gap and a coin that starts later (and a ROWS
  window shown to give other numbers);
* ``fct_price_daily``'s precedence over days that several sources cover (our trades > Binance klines > CSV >
  CoinGecko), and a day of our trades that is not whole (an id hole) falling back to the kline;
* the multi-interval bars (5m, 15m, 1h, 4h, 1d) against a recomputation from the 1-minute bars;
* ``fct_futures_daily``'s basis, ``dim_coin``'s all-time high and low and history span, ``dim_date``'s span.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pyarrow as pa
import pytest
import yaml

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment
from cryptolake.settings import Settings
from cryptolake.tables import (
    BRONZE_BINANCE_KLINES,
    BRONZE_OHLCV_CSV,
    SILVER_DAILY_PRICES,
    SILVER_FEAR_GREED,
    SILVER_OHLCV_1M,
)
from cryptolake_dagster_tests.dbt.test_dbt_project import _dbt_build
from cryptolake_platform.data_dictionary import MARTS_DIR

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


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _at(day: date) -> datetime:
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
    start = _at(day)
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
            "exchange": "binance", "market": market, "symbol": symbol, "minute": _at(day) + timedelta(minutes=i),
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


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> dict[str, Any]:
    """Plant the history, run ``dbt build`` once, return what was planted and every Gold table read back."""
    tmp_path = tmp_path_factory.mktemp("gold")
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)
    prepare_spark_environment(settings)
    catalog = get_catalog(settings)
    rng = random.Random(5)

    btc_days = [d for d in _days(BTC_FIRST, BTC_LAST) if not GAP[0] <= d <= GAP[1]]
    btc = _walk(btc_days, Decimal(16_500), rng)
    eth = _walk(_days(ETH_FIRST, BTC_LAST), Decimal(1_700), rng)
    csv = _walk(_days(*CSV_DAYS), Decimal(17_000), rng)
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
        {"exchange": "bitstamp", "symbol": "BTCUSD", "interval": "1d", "open_time": _at(d),
         **{k: b[k] for k in ("open", "high", "low", "close")}, "base_volume": b["volume"],
         "quote_volume": b["quote_volume"], "trade_count": None, "source_file": "Bitstamp_BTCUSD_d.csv",
         "imported_at": INGESTED}
        for d, b in csv.items()
    ])  # fmt: skip
    coingecko = {d: Decimal(rng.randint(15_000_000, 18_000_000)) / 1000 for d in
                 _days(*COINGECKO_ONLY) + _days(*COINGECKO_OVERLAP)}  # fmt: skip
    caps = {d: Decimal(rng.randint(10**11, 10**12)) for d in coingecko}
    _append(catalog, SILVER_DAILY_PRICES.identifier, [
        {"coin_id": "bitcoin", "day": d, "price_usd": p, "market_cap_usd": caps[d], "volume_usd": Decimal(10**9),
         "point_time": _at(d + timedelta(days=1)), "is_provisional": False, "updated_at": INGESTED}
        for d, p in coingecko.items()
    ])  # fmt: skip
    greed = {d: rng.randint(0, 100) for d in _days(BTC_FIRST, BTC_LAST)}
    _append(catalog, SILVER_FEAR_GREED.identifier, [
        {"day": d, "value": v, "classification": "Greed" if v > 50 else "Fear", "updated_at": INGESTED}
        for d, v in greed.items()
    ])  # fmt: skip
    _append(catalog, SILVER_OHLCV_1M.identifier, spot_bars + holed_bars + futures_bars)

    _dbt_build(settings, tmp_path)
    tables, schemas = {}, {}
    for name in ("fct_price_daily", "fct_market_daily", "fct_futures_daily", "dim_coin", "dim_date", "dim_symbol",
                 "fct_ohlcv_5m", "fct_ohlcv_15m", "fct_ohlcv_1h", "fct_ohlcv_4h", "fct_ohlcv_1d", "fct_ohlcv_1m",
                 "fct_completeness_1m", "fct_completeness_daily"):  # fmt: skip
        table = catalog.load_table(f"gold.{name}")
        tables[name] = table.scan().to_arrow().to_pylist()
        schemas[name] = [field.name for field in table.schema().fields]
    holed_minute = next(
        b["minute"] for previous, b in itertools.pairwise(holed_bars)
        if b["first_agg_trade_id"] != previous["last_agg_trade_id"] + 1
    )  # fmt: skip
    return {"btc": btc, "eth": eth, "csv": csv, "coingecko": coingecko, "caps": caps, "greed": greed,
            "minutes": spot_bars + holed_bars + futures_bars, "spot_bars": spot_bars, "futures_bars": futures_bars,
            "holed_minute": holed_minute, "tables": tables, "schemas": schemas}  # fmt: skip


def _append(catalog, identifier: str, rows: list[dict]) -> None:
    table = catalog.load_table(identifier)
    table.append(pa.Table.from_pylist(rows, schema=table.schema().as_arrow()))


def _expected_prices(gold: dict) -> dict[tuple[str, date], tuple[str, Decimal, Decimal | None]]:
    """(coin, day) -> (source, close, base volume) by the documented precedence, from what was planted (later
    assignments win: lowest precedence first)."""
    expected: dict[tuple[str, date], tuple[str, Decimal, Decimal | None]] = {}
    for day, price in gold["coingecko"].items():
        expected[("bitcoin", day)] = ("coingecko", price, None)
    for day, bar in gold["csv"].items():
        expected[("bitcoin", day)] = ("csv", bar["close"], bar["volume"])
    for day, bar in gold["btc"].items():
        expected[("bitcoin", day)] = ("binance_klines", bar["close"], bar["volume"])
    for day, bar in gold["eth"].items():
        expected[("ethereum", day)] = ("binance_klines", bar["close"], bar["volume"])
    ours = sorted(gold["spot_bars"], key=lambda b: b["minute"])
    expected[("bitcoin", TRADES_DAY)] = ("trades", ours[-1]["close"], sum(b["volume"] for b in ours))
    return expected


def test_price_daily_follows_the_source_precedence(gold) -> None:
    rows = gold["tables"]["fct_price_daily"]
    actual = {(r["coin_id"], r["day"]): (r["source"], r["close"], r["volume"]) for r in rows}
    assert len(actual) == len(rows)
    assert actual == _expected_prices(gold)
    assert not any(GAP[0] <= day <= GAP[1] for _, day in actual)  # days no source covers are absent
    by_key = {(r["coin_id"], r["day"]): r for r in rows}
    assert by_key[("bitcoin", date(2023, 1, 3))]["source_symbol"] == "BTCUSDT"  # klines over CSV
    assert by_key[("bitcoin", date(2022, 12, 3))]["source_exchange"] == "bitstamp"
    assert by_key[("bitcoin", HOLED_DAY)]["source"] == "binance_klines"  # our day has a hole


def _window(series: dict[date, Decimal], day: date, days: int) -> list[Decimal]:
    return [series[d] for d in sorted(series) if day - timedelta(days=days - 1) <= d <= day]


def test_market_daily_windows_are_calendar_windows(gold) -> None:
    rows = {(r["coin_id"], r["day"]): r for r in gold["tables"]["fct_market_daily"]}
    closes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    volumes: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for (coin, day), (_, close, volume) in _expected_prices(gold).items():
        closes[coin][day] = close
        if volume is not None:
            volumes[coin][day] = volume
    assert set(rows) == {(coin, day) for coin in closes for day in closes[coin]}
    for coin, series in closes.items():
        log_returns = {
            d: math.log(float(series[d]) / float(series[d - timedelta(days=1)]))
            for d in series if d - timedelta(days=1) in series
        }  # fmt: skip
        for day in series:
            row = rows[(coin, day)]
            for days in (7, 30, 200):
                window = _window(series, day, days)
                assert row[f"ma_{days}d_days"] == len(window), (coin, day, days)
                assert row[f"ma_{days}d"] == (sum(window) / len(window)).quantize(E12, ROUND_HALF_UP), (coin, day)
                assert row[f"min_close_{days}d"] <= row[f"ma_{days}d"] <= row[f"max_close_{days}d"]
            for days in (7, 30):
                returns = [log_returns[d] for d in sorted(log_returns) if day - timedelta(days=days - 1) <= d <= day]
                assert row[f"volatility_{days}d_returns"] == len(returns)
                if len(returns) < 2:
                    assert row[f"volatility_{days}d"] is None
                else:
                    expected = statistics.stdev(returns) * math.sqrt(365)
                    assert math.isclose(row[f"volatility_{days}d"], expected, rel_tol=1e-9), (coin, day, days)
            if day in log_returns:
                assert math.isclose(row["log_return"], log_returns[day], rel_tol=1e-12, abs_tol=1e-15)
                previous = series[day - timedelta(days=1)]
                assert math.isclose(row["simple_return"], float(series[day]) / float(previous) - 1, abs_tol=1e-12)
            else:
                assert row["log_return"] is None and row["simple_return"] is None
            window = _window(volumes[coin], day, 7)
            assert row["avg_volume_7d_days"] == len(window)
            if window:
                assert row["avg_volume_7d"] == (sum(window) / len(window)).quantize(E12, ROUND_HALF_UP)
            greed = gold["greed"].get(day)
            assert row["fear_greed_value"] == greed
            if greed is not None:
                assert math.isclose(row["sentiment_score"], (greed - 50) / 50)
            assert row["market_cap"] == (gold["caps"].get(day) if coin == "bitcoin" else None)

    # Right after the gap a ROWS window (the last 7 rows) would reach back before the gap: other numbers.
    btc = closes["bitcoin"]
    after_gap = GAP[1] + timedelta(days=3)
    rows_window = [btc[d] for d in sorted(btc) if d <= after_gap][-7:]
    rows_ma = (sum(rows_window) / 7).quantize(E12, ROUND_HALF_UP)
    assert rows[("bitcoin", after_gap)]["ma_7d_days"] == 3
    assert rows[("bitcoin", after_gap)]["ma_7d"] != rows_ma
    # ETH starts later: its first day's windows hold that one day
    first_eth = rows[("ethereum", ETH_FIRST)]
    assert (first_eth["ma_200d_days"], first_eth["ma_200d"]) == (1, gold["eth"][ETH_FIRST]["close"])


def _bucket(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@pytest.mark.parametrize(
    ("table", "seconds", "time_column"),
    [("fct_ohlcv_5m", 300, "open_time"), ("fct_ohlcv_15m", 900, "open_time"), ("fct_ohlcv_1h", 3600, "hour"),
     ("fct_ohlcv_4h", 14_400, "open_time"), ("fct_ohlcv_1d", 86_400, "open_time")],
)  # fmt: skip
def test_multi_interval_bars_equal_a_recomputation(gold, table, seconds, time_column) -> None:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for bar in gold["minutes"]:
        groups[(bar["market"], bar["symbol"], _bucket(bar["minute"], seconds))].append(bar)
    actual = {(r["market"], r["symbol"], r[time_column]): r for r in gold["tables"][table]}
    assert set(actual) == set(groups)
    for key, members in groups.items():
        members.sort(key=lambda b: b["minute"])
        volume = sum(b["volume"] for b in members)
        quote = sum(b["quote_volume"] for b in members)
        want = {
            "open": members[0]["open"], "high": max(b["high"] for b in members), "low": min(b["low"] for b in members),
            "close": members[-1]["close"], "volume": volume, "quote_volume": quote,
            "trade_count": sum(b["trade_count"] for b in members), "minute_count": len(members),
            "vwap": (quote / volume).quantize(E8, ROUND_HALF_UP), "buy_volume": sum(b["buy_volume"] for b in members),
            "agg_trade_count": sum(b["agg_trade_count"] for b in members),
            "first_agg_trade_id": members[0]["first_agg_trade_id"], "last_agg_trade_id": members[-1]["last_agg_trade_id"],
        }  # fmt: skip
        got = actual[key]
        assert {k: got[k] for k in want} == want, key
        # the bar holding the minute the id hole is charged to is incomplete, every other bar complete
        holed = any(b["market"] == "spot" and b["minute"] == gold["holed_minute"] for b in members)
        assert (got["complete"], got["incomplete_minutes"]) == (not holed, int(holed)), key


def test_futures_daily_has_the_basis_to_spot(gold) -> None:
    rows = {r["day"]: r for r in gold["tables"]["fct_futures_daily"] if r["symbol"] == "BTCUSDT"}
    assert set(rows) == {TRADES_DAY}
    row = rows[TRADES_DAY]
    futures = sorted(gold["futures_bars"], key=lambda b: b["minute"])
    spot = sorted(gold["spot_bars"], key=lambda b: b["minute"])
    assert row["close"] == futures[-1]["close"] and row["spot_close"] == spot[-1]["close"]
    assert row["basis"] == futures[-1]["close"] - spot[-1]["close"]
    buy = sum(b["buy_volume"] for b in futures)
    sell = sum(b["sell_volume"] for b in futures)
    assert math.isclose(row["taker_imbalance"], float(buy - sell) / float(buy + sell), rel_tol=1e-9)
    assert row["price_range"] == max(b["high"] for b in futures) - min(b["low"] for b in futures)


def test_dimensions(gold) -> None:
    coins = {r["coin_id"]: r for r in gold["tables"]["dim_coin"]}
    prices = [r for r in gold["tables"]["fct_price_daily"] if r["coin_id"] == "bitcoin"]
    highs = {r["day"]: (r["high"] if r["high"] is not None else r["close"]) for r in prices}
    lows = {r["day"]: (r["low"] if r["low"] is not None else r["close"]) for r in prices}
    btc = coins["bitcoin"]
    assert (btc["first_day"], btc["last_day"]) == (COINGECKO_ONLY[0], BTC_LAST)
    assert btc["all_time_high"] == max(highs.values()) and highs[btc["all_time_high_day"]] == btc["all_time_high"]
    assert btc["all_time_low"] == min(lows.values()) and lows[btc["all_time_low_day"]] == btc["all_time_low"]
    assert btc["base_asset"] == "BTC" and "BTCUSDT" in btc["symbols"] and "BTCUSD" in btc["symbols"]
    assert coins["ethereum"]["first_day"] == ETH_FIRST
    assert coins["solana"]["first_day"] is None and coins["solana"]["days_with_price"] == 0
    days = sorted(r["date_day"] for r in gold["tables"]["dim_date"])
    assert days[0] == COINGECKO_ONLY[0] and days == _days(days[0], days[-1]) and days[-1] >= date.today()
    symbols = {(r["exchange"], r["market"], r["symbol"]): r for r in gold["tables"]["dim_symbol"]}
    assert symbols[("bitstamp", "spot", "BTCUSD")]["quote_asset"] == "USD"
    assert symbols[("binance", "usdm_futures", "BTCUSDT")]["coin_id"] == "bitcoin"


def test_every_built_column_is_in_the_models_yml(gold) -> None:
    """The yml (and so docs/data_dictionary.md) lists exactly the columns dbt built."""
    for name, columns in gold["schemas"].items():
        documented = [
            c["name"] for c in yaml.safe_load((MARTS_DIR / f"{name}.yml").read_text())["models"][0]["columns"]
        ]
        assert documented == columns, name
