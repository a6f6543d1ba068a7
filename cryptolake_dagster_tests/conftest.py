"""Shared fixtures: one temporary lakehouse, one Spark session and one local broker per test session.

The state directory is chosen before any CryptoLake module reads its settings, so every component — Spark,
pyiceberg, Dagster definitions, dbt — points at the same temporary warehouse and SQLite catalog.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_STATE_DIR = Path(tempfile.mkdtemp(prefix="cryptolake-test-")) / "state"
os.environ["CRYPTOLAKE_STATE_DIR"] = str(_STATE_DIR)
os.environ.setdefault("DAGSTER_HOME", str(_STATE_DIR / "dagster"))
(_STATE_DIR / "dagster").mkdir(parents=True, exist_ok=True)

from cryptolake.broker import LocalBroker, ensure_topics, platform_topics  # noqa: E402
from cryptolake.settings import Settings, get_settings  # noqa: E402

SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    get_settings.cache_clear()
    yield get_settings()
    shutil.rmtree(_STATE_DIR.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def spark(settings: Settings):
    from cryptolake.lakehouse.spark import build_spark_session

    session = build_spark_session(settings, "cryptolake-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def broker(settings: Settings) -> Iterator[LocalBroker]:
    with LocalBroker(log_file=settings.state_dir / "broker.log") as local:
        ensure_topics(local.bootstrap_servers, platform_topics(settings))
        yield local


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES_DIR.is_dir():
        pytest.skip(f"recorded samples not found at {SAMPLES_DIR} (expected ../shared/samples beside the repo)")
    return SAMPLES_DIR
