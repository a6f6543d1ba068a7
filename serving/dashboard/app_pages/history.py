"""Long history: a coin's unified daily series since its first day (``/api/v1/history/{coin}``), log scale,
coloured by the source each day came from."""

from __future__ import annotations

import streamlit as st

from serving.dashboard.charts import history_figure
from serving.dashboard.queries import fetch_data, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Long history")
overview = from_api(lambda base: fetch_data(base, "/api/v1/market/overview"), "market overview")
coins = sorted({row["coin_id"] for row in overview or [] if row.get("coin_id")})
if not coins:
    empty("coins with a price history")
    st.stop()
coin = st.selectbox("Coin", coins, key="history_coin")
log_scale = st.toggle("Log scale", value=True, key="history_log")
rows = from_api(lambda base: fetch_data(base, f"/api/v1/history/{coin}"), f"history of {coin}")
frame = to_frame(rows or [], numbers=("close",))
if frame.empty:
    empty(f"daily prices of {coin}")
    st.stop()
st.plotly_chart(history_figure(frame, f"{coin}: daily close by source", log_y=log_scale), key="history_chart")
sources = frame.groupby("source")["day"].agg(["min", "max", "count"]).reset_index()
sources.columns = ["source", "first day", "last day", "days"]
st.dataframe(sources, hide_index=True)
utc_caption("Precedence of the sources: our trades > Binance klines > imported CSV > CoinGecko.")
