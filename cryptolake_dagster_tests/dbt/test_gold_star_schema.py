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

import math
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import yaml

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment
from cryptolake.settings import Settings
from cryptolake_dagster_tests.dbt.gold_history import (
    BTC_LAST,
    COINGECKO_ONLY,
    E8,
    E12,
    ETH_FIRST,
    GAP,
    HOLED_DAY,
    TRADES_DAY,
    days_between,
    plant_history,
)
from cryptolake_dagster_tests.dbt.test_dbt_project import _dbt_build
from cryptolake_platform.data_dictionary import MARTS_DIR


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> dict[str, Any]:
    """Plant the history, run ``dbt build`` once, return what was planted and every Gold table read back."""
    tmp_path = tmp_path_factory.mktemp("gold")
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)
    prepare_spark_environment(settings)
    catalog = get_catalog(settings)
    planted = plant_history(catalog)
    _dbt_build(settings, tmp_path)
    tables, schemas = {}, {}
    for name in ("fct_price_daily", "fct_market_daily", "fct_futures_daily", "dim_coin", "dim_date", "dim_symbol",
                 "fct_ohlcv_5m", "fct_ohlcv_15m", "fct_ohlcv_1h", "fct_ohlcv_4h", "fct_ohlcv_1d", "fct_ohlcv_1m",
                 "fct_completeness_1m", "fct_completeness_daily"):  # fmt: skip
        table = catalog.load_table(f"gold.{name}")
        tables[name] = table.scan().to_arrow().to_pylist()
        schemas[name] = [field.name for field in table.schema().fields]
    return {**planted, "tables": tables, "schemas": schemas}


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
    assert days[0] == COINGECKO_ONLY[0] and days == days_between(days[0], days[-1]) and days[-1] >= date.today()
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
