"""Market overview: a card per coin (last price, 24 h change, volume, market cap, signal, 30-day sparkline) and
the Fear & Greed gauge, from ``/api/v1/market/overview``, ``/api/v1/history/{coin}`` and
``/api/v1/sentiment/fear-greed``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import streamlit as st

from serving.dashboard.charts import gauge_figure, sparkline_figure
from serving.dashboard.queries import fetch_data, plain, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Market overview")
coins = from_api(lambda base: fetch_data(base, "/api/v1/market/overview"), "market overview")
sentiment = from_api(lambda base: fetch_data(base, "/api/v1/sentiment/fear-greed", {"limit": 400}), "Fear & Greed")

cards, gauge = st.columns([3, 1])
with gauge:
    if sentiment:
        latest = max(sentiment, key=lambda row: str(row.get("day")))
        st.plotly_chart(
            gauge_figure(float(latest["value"]), f"Fear & Greed, {latest.get('day')}", latest.get("classification")),
            key="fear_greed_gauge",
        )
    else:
        empty("Fear & Greed index")

with cards:
    if not coins:
        empty("daily market facts (gold.fct_market_daily)")
    else:
        columns = st.columns(3)
        for index, coin in enumerate(coins):
            coin_id = coin.get("coin_id", "?")
            newest = date.fromisoformat(str(coin.get("day") or datetime.now(UTC).date())[:10])
            since = (newest - timedelta(days=30)).isoformat()  # the month up to the coin's newest day
            with columns[index % 3].container(border=True):
                change = coin.get("simple_return")  # the 24 h change: close over the previous day's close
                st.metric(
                    coin_id,
                    plain(coin.get("close")),
                    delta=f"{float(change) * 100:.2f} %" if change not in (None, "") else None,
                )
                st.caption(
                    f"{coin.get('day')} · volume {coin.get('quote_volume') or '-'} USD · market cap "
                    f"{coin.get('market_cap') or '-'} · {(coin.get('ma_30d_signal') or '').replace('_', ' ')} · "
                    f"source {coin.get('source')}"
                )
                history = from_api(
                    lambda base, c=coin_id, s=since: fetch_data(base, f"/api/v1/history/{c}", {"start": s}),
                    f"history of {coin_id}",
                )
                frame = to_frame(history or [], numbers=("close",))
                if not frame.empty and "close" in frame:
                    st.plotly_chart(sparkline_figure(frame, "day", "close"), key=f"spark_{index}")
utc_caption()
