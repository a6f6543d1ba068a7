"""The dashboard in a real browser: the API and Streamlit served over HTTP on a lakehouse whose Gold tables a real
``dbt build`` made from planted history, and headless Debian chromium (Playwright with ``executable_path``) through
every page. Each page must show its title and at least one rendered chart, and no Streamlit error box; the
screenshots go to docs/screenshots/ (the README shows them)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import uvicorn

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.lakehouse.spark import prepare_spark_environment
from cryptolake.settings import REPO_ROOT, Settings
from cryptolake_dagster_tests.dbt.gold_history import plant_history, plant_recent_bars
from cryptolake_dagster_tests.dbt.test_dbt_project import _dbt_build

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
#: (URL path, title) of every page, in the navigation's order
PAGES = (
    ("", "Market overview"),  # the default page, at the root
    ("candles", "Candles"),
    ("compare", "Compare coins"),
    ("history", "Long history"),
    ("futures", "Futures"),
    ("sentiment", "Sentiment"),
    ("quality", "Data quality & pipeline"),
)
PAGE_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def _plant_check_history(catalog) -> None:
    """A week of check results as the checks record them (one failure), through the platform's recorder."""
    from cryptolake_dagster.quality.results import CheckRecord, append_check_results

    now = datetime.now(UTC)
    records = [
        CheckRecord(
            check_name=name, asset_key=asset, partition_key=(now - timedelta(days=day)).date().isoformat(),
            outcome="failed" if (day, name) == (2, "soda_gold_fct_ohlcv_1h") else "passed", severity="ERROR",
            blocking=True, check_type="soda", run_id=f"run-{day}", row_count=1440 - day,
            checked_at=now - timedelta(days=day, minutes=5),
        )
        for day in range(7)
        for name, asset in (("soda_silver_ohlcv_1m", "silver/ohlcv_1m"), ("soda_gold_fct_ohlcv_1h", "gold/fct_ohlcv_1h"))
    ]  # fmt: skip
    append_check_results(catalog, records)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[str]:
    """A populated lakehouse, the API on it and the dashboard on the API; yields the dashboard's URL."""
    from serving.api.main import create_app

    tmp_path = tmp_path_factory.mktemp("browser")
    settings = Settings(state_dir=tmp_path / "state", spark_shuffle_partitions=1)
    prepare_spark_environment(settings)
    catalog = get_catalog(settings)
    plant_history(catalog)
    plant_recent_bars(catalog, datetime.now(UTC))
    _dbt_build(settings, tmp_path)
    _plant_check_history(catalog)

    api_port, app_port = _free_port(), _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    api_url = f"http://127.0.0.1:{api_port}"
    _wait_for(f"{api_url}/health")
    env = {**os.environ, "CRYPTOLAKE_API_URL": api_url, "CRYPTOLAKE_STATE_DIR": str(settings.state_dir)}
    streamlit = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "serving" / "dashboard" / "app.py"),
         "--server.headless", "true", "--server.port", str(app_port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        app_url = f"http://127.0.0.1:{app_port}"
        _wait_for(f"{app_url}/_stcore/health")
        yield app_url
    finally:
        streamlit.terminate()
        streamlit.wait(timeout=20)
        server.should_exit = True


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize(("path", "title"), PAGES, ids=[path or "overview" for path, _ in PAGES])
def test_every_page_renders_a_chart_and_no_error(dashboard: str, browser, path: str, title: str) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    try:
        page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=title).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        page.locator(".js-plotly-plot").first.wait_for(timeout=PAGE_TIMEOUT_MS)
        page.wait_for_timeout(1500)  # let the remaining elements of the script run render
        errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
        assert errors.count() == 0, errors.first.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{path or 'overview'}.png"), full_page=True)
    finally:
        page.close()


def test_screenshots_are_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [path for path, _ in PAGES if f"docs/screenshots/{path or 'overview'}.png" not in readme]
    assert not missing, f"README does not show {missing}"
    assert Path(SCREENSHOTS).is_dir()
