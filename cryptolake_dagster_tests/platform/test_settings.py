"""Typed settings: env prefix, list parsing, profile validation, and a .env.example that matches the code."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cryptolake.settings import REPO_ROOT, Settings, render_env_example


def test_env_example_documents_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    assert text == render_env_example(), "regenerate with: .venv/bin/cryptolake env-example > .env.example"
    for name in Settings.model_fields:
        assert f"CRYPTOLAKE_{name.upper()}=" in text


def test_env_vars_with_prefix_and_lists(monkeypatch) -> None:
    monkeypatch.setenv("CRYPTOLAKE_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.setenv("CRYPTOLAKE_MARKETS", '["spot", "usdm_futures"]')
    monkeypatch.setenv("CRYPTOLAKE_KAFKA_PARTITIONS", "6")
    settings = Settings()
    assert settings.symbols == ["BTCUSDT", "ETHUSDT"]
    assert settings.markets == ["spot", "usdm_futures"]
    assert settings.kafka_partitions == 6


def test_cluster_profile_requires_its_endpoints(monkeypatch) -> None:
    monkeypatch.delenv("CRYPTOLAKE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(ValidationError, match="CRYPTOLAKE_CATALOG_URI"):
        Settings(profile="cluster", kafka_bootstrap_servers="kafka:9092")
    settings = Settings(
        profile="cluster", kafka_bootstrap_servers="kafka:9092", catalog_uri="http://rest:8181", warehouse="s3://w/"
    )
    assert settings.resolved_catalog_uri == "http://rest:8181"


def test_local_profile_keeps_state_under_state_dir(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path)
    assert settings.resolved_catalog_uri == f"sqlite:///{tmp_path.resolve()}/catalog.db"
    assert settings.resolved_warehouse == (tmp_path.resolve() / "warehouse").as_uri()
    assert settings.dagster_home == tmp_path.resolve() / "dagster"
