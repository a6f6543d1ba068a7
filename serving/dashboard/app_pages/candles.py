"""Candles page: OHLCV candlesticks and volume of one symbol at every interval, with VWAP and moving-average
overlays and incomplete bars marked, read from the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import streamlit as st

from cryptolake.contract import MARKETS
from serving.dashboard.charts import candlestick_figure
from serving.dashboard.queries import (
    INTERVALS,
    ApiError,
    api_url,
    bars_frame,
    fetch_bars,
    fetch_symbols,
    lookback_limit,
)

LOOKBACKS: Final = {
    "1 hour": timedelta(hours=1),
    "6 hours": timedelta(hours=6),
    "24 hours": timedelta(hours=24),
    "3 days": timedelta(days=3),
    "7 days": timedelta(days=7),
    "30 days": timedelta(days=30),
}
REFRESH_SECONDS: Final = (5, 10, 30, 60)
START_HINT: Final = "Start the pipeline with `cryptolake run` (or materialize the assets in Dagster)."

base_url = api_url()
st.title("Candles")

try:
    symbols = fetch_symbols(base_url)
except ApiError as exc:
    if not exc.no_data_yet:
        st.error(
            f"The CryptoLake API at {base_url} is not available: {exc}. Start it with `python -m serving.api` "
            "(or `cryptolake run`), then reload this page.",
            icon=":material/cloud_off:",
        )
        st.stop()
    symbols = []

if not symbols:
    st.info(f"No bars yet: the lakehouse has no 1-minute bars. {START_HINT}", icon=":material/hourglass_empty:")
    st.stop()

symbol_col, interval_col, lookback_col, market_col = st.columns([2, 1, 1, 1])
symbol = symbol_col.selectbox("Symbol", symbols, key="symbol")
interval = interval_col.selectbox("Interval", list(INTERVALS), key="interval")
lookback = lookback_col.selectbox("Lookback", list(LOOKBACKS), index=1, key="lookback")
market = market_col.selectbox("Market", list(MARKETS), key="market")

with st.sidebar:
    show_vwap = st.toggle("VWAP", value=True, key="show_vwap")
    moving_averages = st.multiselect("Moving averages (bars)", [20, 50, 200], default=[20], key="moving_averages")
    auto_refresh = st.toggle("Auto-refresh", value=False, key="auto_refresh")
    refresh_s = st.selectbox("Every (seconds)", REFRESH_SECONDS, index=1, key="refresh_s", disabled=not auto_refresh)


@st.fragment(run_every=refresh_s if auto_refresh else None)
def candles() -> None:
    end = datetime.now(UTC)
    start = end - LOOKBACKS[lookback]
    try:
        bars = fetch_bars(
            base_url,
            symbol,
            interval=interval,
            start=start,
            end=end,
            market=market,
            limit=lookback_limit(LOOKBACKS[lookback], interval),
        )
    except ApiError as exc:
        if exc.no_data_yet:
            st.info(f"No {interval} bars yet: {exc}", icon=":material/hourglass_empty:")
        else:
            st.error(f"Could not load bars: {exc}", icon=":material/cloud_off:")
        return
    if not bars:
        st.info(
            f"No bars for {symbol} ({market}, {interval}) in the last {lookback}. {START_HINT}",
            icon=":material/hourglass_empty:",
        )
        return
    last = bars[-1]
    close_col, volume_col, trades_col = st.columns(3)
    close_col.metric("Last close", last["close"])
    volume_col.metric(f"Volume ({interval} bar)", last["volume"])
    trades_col.metric("Trades", last["trade_count"])
    title = f"{symbol} {market} {interval} — last {lookback}"
    frame = bars_frame(bars)
    overlays = {f"MA {n}": frame["close"].rolling(n).mean() for n in moving_averages}
    figure = candlestick_figure(frame, title, overlays=overlays, show_vwap=show_vwap)
    st.plotly_chart(figure, key="candles_chart")
    incomplete = int((frame["complete"] == False).sum()) if "complete" in frame else 0  # noqa: E712
    if incomplete:
        st.warning(
            f"{incomplete} bar(s) marked ▼ are incomplete: trades are missing (see Data quality; repair the day "
            "with the repair_day job).",
            icon=":material/warning:",
        )
    st.caption(f"{len(bars)} bars, last bar at {last['time']}; updated {end:%H:%M:%S} UTC from {base_url}")


candles()
