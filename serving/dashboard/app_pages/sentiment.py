"""Sentiment: today's Fear & Greed gauge and its history against BTC's close (``/api/v1/sentiment/fear-greed``,
``/api/v1/history/bitcoin``)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from serving.dashboard.charts import gauge_figure
from serving.dashboard.queries import fetch_data, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Sentiment")
rows = from_api(lambda base: fetch_data(base, "/api/v1/sentiment/fear-greed", {"limit": 5000}), "Fear & Greed")
frame = to_frame(rows or [], numbers=("value",))
if frame.empty:
    empty("Fear & Greed index")
    st.stop()
frame = frame.sort_values("day")
latest = frame.iloc[-1]
gauge, chart = st.columns([1, 3])
gauge.plotly_chart(
    gauge_figure(float(latest["value"]), f"{latest['day']:%Y-%m-%d}", str(latest.get("classification", ""))),
    key="sentiment_gauge",
)
btc = to_frame(from_api(lambda base: fetch_data(base, "/api/v1/history/bitcoin"), "BTC history") or [],
               numbers=("close",))  # fmt: skip
figure = make_subplots(specs=[[{"secondary_y": True}]])
figure.add_trace(go.Scatter(x=frame["day"], y=frame["value"], name="Fear & Greed", line={"color": "#fb8c00"}))
if not btc.empty:
    btc = btc[btc["day"] >= frame["day"].min()]
    figure.add_trace(go.Scatter(x=btc["day"], y=btc["close"], name="BTC close", line={"color": "#1e88e5"}),
                     secondary_y=True)  # fmt: skip
figure.update_layout(title="Fear & Greed against BTC", height=460, legend={"orientation": "h", "y": 1.05})
figure.update_yaxes(title_text="index (0..100)", range=[0, 100], secondary_y=False)
figure.update_yaxes(title_text="BTC (USD)", secondary_y=True)
chart.plotly_chart(figure, key="sentiment_history")
utc_caption()
