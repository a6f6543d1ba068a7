"""Plotly figures of the dashboard."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"


def candlestick_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Candlesticks over a volume bar subplot sharing the time axis. ``frame`` comes from ``bars_frame``."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.75, 0.25])
    figure.add_trace(
        go.Candlestick(
            x=frame["time"],
            open=frame["open"],
            high=frame["high"],
            low=frame["low"],
            close=frame["close"],
            name="price",
            increasing_line_color=UP_COLOR,
            decreasing_line_color=DOWN_COLOR,
        ),
        row=1,
        col=1,
    )
    colors = [UP_COLOR if c >= o else DOWN_COLOR for o, c in zip(frame["open"], frame["close"], strict=True)]
    figure.add_trace(go.Bar(x=frame["time"], y=frame["volume"], name="volume", marker_color=colors), row=2, col=1)
    figure.update_layout(
        title=title,
        height=620,
        showlegend=False,
        xaxis_rangeslider_visible=False,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_yaxes(title_text="volume", row=2, col=1)
    return figure
