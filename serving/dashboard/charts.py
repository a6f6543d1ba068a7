"""Plotly figures of the dashboard. Inputs are plotting frames from ``queries`` (floats: charts only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
INCOMPLETE_COLOR = "#ffb300"
LINE_COLORS = ("#1e88e5", "#8e24aa", "#43a047", "#fb8c00", "#e53935", "#00acc1", "#6d4c41")
FEAR_GREED_STEPS = (  # Alternative.me's bands
    (0, 25, "#d32f2f", "Extreme Fear"),
    (25, 45, "#f57c00", "Fear"),
    (45, 55, "#fbc02d", "Neutral"),
    (55, 75, "#7cb342", "Greed"),
    (75, 100, "#2e7d32", "Extreme Greed"),
)
_MARGINS = {"l": 10, "r": 10, "t": 50, "b": 10}


def candlestick_figure(
    frame: pd.DataFrame, title: str, *, overlays: dict[str, pd.Series] | None = None, show_vwap: bool = False
) -> go.Figure:
    """Candlesticks over a volume subplot sharing the time axis; ``overlays`` are lines (e.g. moving averages)
    drawn over the candles; bars whose ``complete`` is false get an amber marker above their high."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.75, 0.25])
    figure.add_trace(
        go.Candlestick(
            x=frame["time"], open=frame["open"], high=frame["high"], low=frame["low"], close=frame["close"],
            name="price", increasing_line_color=UP_COLOR, decreasing_line_color=DOWN_COLOR,
        ),
        row=1, col=1,
    )  # fmt: skip
    if show_vwap and "vwap" in frame:
        figure.add_trace(go.Scatter(x=frame["time"], y=frame["vwap"], name="VWAP", line={"width": 1}), row=1, col=1)
    for index, (name, series) in enumerate((overlays or {}).items()):
        color = LINE_COLORS[index % len(LINE_COLORS)]
        figure.add_trace(
            go.Scatter(x=frame["time"], y=series, name=name, line={"width": 1.2, "color": color}), row=1, col=1
        )
    if "complete" in frame:
        incomplete = frame[frame["complete"] == False]  # noqa: E712 (a pandas mask)
        if not incomplete.empty:
            figure.add_trace(
                go.Scatter(
                    x=incomplete["time"], y=incomplete["high"], mode="markers", name="incomplete bar",
                    marker={"symbol": "triangle-down", "size": 9, "color": INCOMPLETE_COLOR},
                ),
                row=1, col=1,
            )  # fmt: skip
    colors = [UP_COLOR if c >= o else DOWN_COLOR for o, c in zip(frame["open"], frame["close"], strict=True)]
    figure.add_trace(go.Bar(x=frame["time"], y=frame["volume"], name="volume", marker_color=colors), row=2, col=1)
    figure.update_layout(
        title=title, height=620, showlegend=bool(overlays) or show_vwap, xaxis_rangeslider_visible=False,
        margin=_MARGINS, legend={"orientation": "h", "y": 1.02, "x": 0},
    )  # fmt: skip
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_yaxes(title_text="volume", row=2, col=1)
    return figure


def sparkline_figure(frame: pd.DataFrame, x: str, y: str) -> go.Figure:
    """A small line without axes (a card's trend)."""
    rising = len(frame) > 1 and frame[y].iloc[-1] >= frame[y].iloc[0]
    figure = go.Figure(
        go.Scatter(x=frame[x], y=frame[y], mode="lines", line={"width": 2, "color": UP_COLOR if rising else DOWN_COLOR})
    )
    figure.update_layout(height=70, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def gauge_figure(value: float, title: str, classification: str | None = None) -> go.Figure:
    """The Fear & Greed gauge, 0..100 with Alternative.me's bands."""
    figure = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=value,
            title={"text": f"{title}<br><sub>{classification or ''}</sub>"},
            gauge={
                "axis": {"range": [0, 100]},
                "bar": {"color": "#263238", "thickness": 0.25},
                "steps": [{"range": [lo, hi], "color": color} for lo, hi, color, _ in FEAR_GREED_STEPS],
            },
        )
    )
    figure.update_layout(height=260, margin={"l": 20, "r": 20, "t": 60, "b": 10})
    return figure


def lines_figure(frame: pd.DataFrame, x: str, columns: list[str], title: str, *, log_y: bool = False,
                 y_title: str | None = None) -> go.Figure:  # fmt: skip
    figure = go.Figure()
    for index, column in enumerate(columns):
        figure.add_trace(
            go.Scatter(x=frame[x], y=frame[column], name=column, line={"color": LINE_COLORS[index % len(LINE_COLORS)]})
        )
    figure.update_layout(title=title, height=460, margin=_MARGINS, legend={"orientation": "h", "y": 1.02, "x": 0})
    if log_y:
        figure.update_yaxes(type="log")
    if y_title:
        figure.update_yaxes(title_text=y_title)
    return figure


def history_figure(frame: pd.DataFrame, title: str, *, log_y: bool = True) -> go.Figure:
    """A daily close series coloured by the source each day came from (``source`` column)."""
    figure = go.Figure()
    for index, (source, part) in enumerate(frame.groupby("source", sort=False)):
        figure.add_trace(
            go.Scatter(
                x=part["day"], y=part["close"], mode="markers+lines", name=str(source),
                marker={"size": 3, "color": LINE_COLORS[index % len(LINE_COLORS)]}, line={"width": 1},
            )
        )  # fmt: skip
    figure.update_layout(title=title, height=480, margin=_MARGINS, legend={"orientation": "h", "y": 1.02, "x": 0})
    figure.update_yaxes(type="log" if log_y else "linear", title_text="close (USD)")
    return figure


def heatmap_figure(matrix: pd.DataFrame, title: str) -> go.Figure:
    """A correlation matrix, -1..1."""
    figure = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(), x=list(matrix.columns), y=list(matrix.index), zmin=-1, zmax=1, colorscale="RdBu",
            text=np.round(matrix.to_numpy(), 2), texttemplate="%{text}",
        )
    )  # fmt: skip
    figure.update_layout(title=title, height=420, margin=_MARGINS)
    return figure


def bars_figure(frame: pd.DataFrame, x: str, y: str, title: str, *, color: str | None = None) -> go.Figure:
    figure = go.Figure(go.Bar(x=frame[x], y=frame[y], marker_color=color or LINE_COLORS[0], name=y))
    figure.update_layout(title=title, height=320, margin=_MARGINS)
    return figure


def outcomes_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Check outcomes per day, stacked (``day``, ``outcome``, ``count`` columns)."""
    colors = {"passed": UP_COLOR, "failed": DOWN_COLOR, "error": INCOMPLETE_COLOR, "warn": INCOMPLETE_COLOR}
    figure = go.Figure()
    for outcome, part in frame.groupby("outcome"):
        figure.add_trace(
            go.Bar(x=part["day"], y=part["count"], name=str(outcome), marker_color=colors.get(str(outcome)))
        )
    figure.update_layout(title=title, barmode="stack", height=340, margin=_MARGINS)
    return figure
