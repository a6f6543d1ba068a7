"""Data quality & pipeline: check outcomes over time and the failing ones (``/api/v1/quality/checks``),
completeness per symbol and day (``/api/v1/quality/completeness/{symbol}``), freshness per layer, the Bronze
writer's counters and the last run of each asset (``/api/v1/pipeline/freshness``), recent alerts
(``/api/v1/pipeline/alerts``)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from serving.dashboard.charts import bars_figure, outcomes_figure
from serving.dashboard.queries import ApiError, fetch_data, fetch_json, fetch_symbols, to_frame
from serving.dashboard.states import empty, from_api, utc_caption

st.title("Data quality & pipeline")

st.subheader("Freshness per layer")


def _freshness(base: str) -> dict | None:
    try:
        return fetch_json(base, "/api/v1/pipeline/freshness")
    except ApiError as exc:
        if exc.status == 404:  # an API without the route
            return None
        raise


WRITER_COUNTERS = ("rows", "batches", "rejected", "rows_per_second", "freshness_s", "updated_at")

freshness = from_api(_freshness, "freshness")
layers = (freshness or {}).get("layers") or []
if layers:
    columns = st.columns(len(layers))
    for column, layer in zip(columns, layers, strict=True):
        lag = layer.get("lag_seconds")
        column.metric(
            f"{layer.get('layer', '?')} ({layer.get('table', '?')})",
            f"{lag:.0f} s behind" if isinstance(lag, int | float) else "no data",
            delta="stale" if layer.get("stale") else None, delta_color="inverse",
            help=f"newest {layer.get('time_column', 'time')}: {layer.get('newest') or '-'}",
        )  # fmt: skip
    writer = (freshness or {}).get("bronze_writer")
    if writer:
        st.caption("Bronze writer: " + ", ".join(
            f"{key} {round(writer[key], 1) if isinstance(writer[key], float) else writer[key]}"
            for key in WRITER_COUNTERS if writer.get(key) is not None
        ))  # fmt: skip
    else:
        st.caption(f"Bronze writer: {(freshness or {}).get('bronze_writer_notice') or 'no status'}")
    assets = (freshness or {}).get("assets") or []
    if assets:
        with st.expander(f"Last run of each asset ({len(assets)})"):
            st.dataframe(pd.DataFrame(assets), hide_index=True)
    elif (freshness or {}).get("notice"):
        st.caption(str(freshness["notice"]))
else:
    empty("freshness figures")

st.subheader("Alerts")


def _alerts(base: str) -> dict | None:
    try:
        return fetch_json(base, "/api/v1/pipeline/alerts", {"limit": 200})
    except ApiError as exc:
        if exc.status == 404:  # an API without the route
            return None
        raise


alerts = from_api(_alerts, "alerts")
if alerts is None:
    empty("alerts (failed runs, failed checks, stale layers)")
elif alerts.get("data"):
    order = ("raised_at", "kind", "severity", "subject", "message", "partition_key", "run_id")
    st.dataframe(pd.DataFrame(alerts["data"]), hide_index=True, column_order=order)
else:
    st.success(f"No alerts. {alerts.get('notice') or ''}", icon=":material/check_circle:")

st.subheader("Checks over time")
checks = from_api(lambda base: fetch_data(base, "/api/v1/quality/checks", {"limit": 5000}), "check results")
frame = to_frame(checks or [])
if frame.empty:
    empty("check results (quality.check_results)")
else:
    frame["day"] = frame["checked_at"].dt.floor("D")
    counts = frame.groupby(["day", "outcome"]).size().reset_index(name="count")
    st.plotly_chart(outcomes_figure(counts, "Check outcomes per day"), key="outcomes")
    failing = frame[frame["outcome"] != "passed"].sort_values("checked_at", ascending=False)
    if failing.empty:
        st.success("Every recorded check passed.", icon=":material/check_circle:")
    else:
        st.dataframe(failing.drop(columns=["day"]).head(200), hide_index=True)

st.subheader("Completeness per symbol and day")
symbols = from_api(lambda base: fetch_symbols(base), "symbols") or []
if not symbols:
    empty("bars to check")
else:
    symbol = st.selectbox("Symbol", symbols, key="quality_symbol")
    rows = from_api(lambda base: fetch_data(base, f"/api/v1/quality/completeness/{symbol}"), "completeness")
    days = to_frame(rows or [], numbers=("complete_share",))
    if days.empty:
        empty(f"completeness of {symbol} (gold.fct_completeness_daily)")
    else:
        days["complete %"] = days["complete_share"] * 100
        st.plotly_chart(bars_figure(days, "day", "complete %", f"{symbol}: complete minutes, %"), key="completeness")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
utc_caption()
