"""The Streamlit candles page (``AppTest``) against the live test API, reached through ``CRYPTOLAKE_API_URL``."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cryptolake.settings import get_settings

if TYPE_CHECKING:
    from conftest import ApiServer

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = REPO_ROOT / "serving" / "dashboard" / "app.py"
CANDLES_PAGE = REPO_ROOT / "serving" / "dashboard" / "app_pages" / "candles.py"
TIMEOUT_S = 30


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point the dashboard's settings at an API base URL (fresh cached settings before and after)."""

    def point(url: str) -> None:
        monkeypatch.setenv("CRYPTOLAKE_API_URL", url)
        get_settings.cache_clear()

    yield point
    get_settings.cache_clear()


def run_page(path: Path = CANDLES_PAGE) -> AppTest:
    app = AppTest.from_file(str(path), default_timeout=TIMEOUT_S)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def numbers(values: Any) -> list[float]:
    """A numeric trace array: a list, or plotly's typed-array form ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values)


def chart_traces(app: AppTest) -> dict[str, dict[str, Any]]:
    charts = app.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    return {trace["type"]: trace for trace in spec["data"]}


def test_candles_page_draws_candles_and_volume(seeded_api: ApiServer, point_at: Any) -> None:
    point_at(seeded_api.base_url)
    app = run_page()
    assert app.selectbox(key="symbol").options == ["BTCUSDT", "ETHUSDT"]
    traces = chart_traces(app)
    candles, volume = traces["candlestick"], traces["bar"]
    assert len(candles["x"]) == len(volume["x"]) == seeded_api.recent_bars
    assert candles["x"] == sorted(candles["x"])
    last = seeded_api.recent_bars - 1
    assert numbers(candles["open"])[-1] == pytest.approx(float(Decimal("64000.12345678") + last))
    assert app.metric[0].value == f"{Decimal('64001.62345678') + last}"  # the exact decimal string, not a float
    assert not app.info and not app.error


def test_candles_page_says_when_the_window_has_no_bars(seeded_api: ApiServer, point_at: Any) -> None:
    point_at(seeded_api.base_url)
    app = run_page()
    app.selectbox(key="interval").set_value("1h").run()  # Gold has hourly bars only in 2024
    assert not app.exception and not app.get("plotly_chart")
    assert "No bars for BTCUSDT (spot, 1h)" in app.info[0].value
    app.selectbox(key="interval").set_value("1m")
    app.selectbox(key="symbol").set_value("ETHUSDT").run()
    assert "No bars for ETHUSDT (spot, 1m)" in app.info[0].value


@pytest.mark.parametrize("lake", ["empty_api", "bare_api"])
def test_candles_page_without_data(lake: str, request: pytest.FixtureRequest, point_at: Any) -> None:
    point_at(request.getfixturevalue(lake).base_url)
    app = run_page()
    assert not app.get("plotly_chart") and not app.error
    assert app.info[0].value.startswith("No bars yet")


def test_candles_page_when_the_api_is_down(point_at: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        point_at(f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = run_page()
    assert not app.get("plotly_chart")
    assert "API" in app.error[0].value and "not available" in app.error[0].value


def test_app_navigation_opens_the_overview_page(seeded_api: ApiServer, point_at: Any) -> None:
    point_at(seeded_api.base_url)
    app = run_page(APP)
    assert app.title[0].value == "Market overview"
    assert not app.exception and not app.error
