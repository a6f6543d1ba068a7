"""Coin comparison: prices normalized to a start date, a returns and volatility table, and the correlation of
daily returns, from ``/api/v1/market/daily/{coin}``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import streamlit as st

from serving.dashboard.charts import heatmap_figure, lines_figure
from serving.dashboard.queries import fetch_data, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Compare coins")
overview = from_api(lambda base: fetch_data(base, "/api/v1/market/overview"), "market overview")
coins = sorted({row["coin_id"] for row in overview or [] if row.get("coin_id")})
if not coins:
    empty("coins with daily market facts")
    st.stop()

days = [str(row["day"])[:10] for row in overview or [] if row.get("day")]
latest = date.fromisoformat(max(days)) if days else datetime.now(UTC).date()  # the newest day the lake holds
chosen = st.multiselect("Coins", coins, default=coins[: min(5, len(coins))], key="compare_coins")
start = st.date_input("Normalize from", value=latest - timedelta(days=90), key="compare_start")
if not chosen:
    st.info("Pick at least one coin.")
    st.stop()

closes, returns, stats = {}, {}, []
for coin in chosen:
    rows = from_api(lambda base, c=coin: fetch_data(base, f"/api/v1/market/daily/{c}", {"start": start.isoformat()}),
                    f"daily facts of {coin}")  # fmt: skip
    frame = to_frame(rows or [], numbers=("close", "simple_return", "volatility_30d", "log_return"))
    if frame.empty:
        continue
    frame = frame.set_index("day").sort_index()
    closes[coin] = frame["close"]
    returns[coin] = frame["simple_return"]
    last = frame.iloc[-1]
    stats.append({
        "coin": coin, "first day": frame.index[0].date(), "last close": rows[-1].get("close"),
        "return since start": f"{(frame['close'].iloc[-1] / frame['close'].iloc[0] - 1) * 100:.2f} %",
        "volatility 30 d": f"{last['volatility_30d']:.3f}" if pd.notna(last.get("volatility_30d")) else "-",
    })  # fmt: skip

if not closes:
    empty("daily prices for the chosen coins since that date")
    st.stop()
normalized = pd.DataFrame({coin: series / series.dropna().iloc[0] * 100 for coin, series in closes.items()})
normalized = normalized.reset_index()
st.plotly_chart(
    lines_figure(normalized, "day", list(closes), f"Price, {start} = 100", y_title="index"), key="normalized"
)
st.dataframe(pd.DataFrame(stats), hide_index=True)
if len(returns) > 1:
    st.plotly_chart(heatmap_figure(pd.DataFrame(returns).corr(), "Correlation of daily returns"), key="correlation")
else:
    st.caption("Pick two coins or more for the correlation of their daily returns.")
utc_caption()
