"""Futures: daily statistics of a USD-M symbol and its basis to spot (``/api/v1/futures/daily/{symbol}``)."""

from __future__ import annotations

import streamlit as st

from serving.dashboard.charts import bars_figure, lines_figure
from serving.dashboard.queries import fetch_data, fetch_symbols, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Futures")
symbols = from_api(lambda base: fetch_symbols(base, market="usdm_futures"), "futures symbols") or []
if not symbols:
    empty("USD-M futures bars")
    st.stop()
symbol = st.selectbox("Symbol", symbols, key="futures_symbol")
rows = from_api(lambda base: fetch_data(base, f"/api/v1/futures/daily/{symbol}"), f"futures days of {symbol}")
numbers = ("close", "spot_close", "basis", "basis_share", "taker_imbalance", "quote_volume", "volume")
frame = to_frame(rows or [], numbers=numbers)
if frame.empty:
    empty(f"daily futures statistics of {symbol}")
    st.stop()
left, right = st.columns(2)
with left:
    st.plotly_chart(lines_figure(frame, "day", ["close", "spot_close"], "Futures and spot close"), key="fut_close")
    st.plotly_chart(bars_figure(frame, "day", "quote_volume", "Quote volume"), key="fut_volume")
with right:
    if "basis_share" in frame:
        frame["basis_pct"] = frame["basis_share"] * 100
        st.plotly_chart(bars_figure(frame, "day", "basis_pct", "Basis to spot, %"), key="fut_basis")
    st.plotly_chart(bars_figure(frame, "day", "taker_imbalance", "Taker buy/sell imbalance"), key="fut_imbalance")
st.dataframe(rows, hide_index=True)
utc_caption()
