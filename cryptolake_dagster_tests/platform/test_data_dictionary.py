"""docs/data_dictionary.md is the dbt yml rendered (not written twice), current, and describes every column."""

from __future__ import annotations

import yaml

from cryptolake_platform.data_dictionary import DICTIONARY_PATH, MARTS_DIR, main, render


def test_the_dictionary_is_current() -> None:
    assert DICTIONARY_PATH.read_text() == render(), (
        "docs/data_dictionary.md is stale: run python -m cryptolake_platform.data_dictionary --write"
    )


def test_every_gold_column_is_described(capsys) -> None:
    models = [m for path in MARTS_DIR.glob("*.yml") for m in yaml.safe_load(path.read_text())["models"]]
    assert len(models) >= 14
    undocumented = [
        f"{m['name']}.{c['name']}" for m in models for c in m.get("columns", []) if not c.get("description")
    ]
    assert not undocumented, undocumented
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert "## gold.fct_market_daily" in printed and "{{" not in printed  # doc() references resolved
