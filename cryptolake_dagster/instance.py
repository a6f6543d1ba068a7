"""The embedded profile's Dagster instance directory (``<state dir>/dagster``), shared by every entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

from cryptolake.settings import REPO_ROOT, Settings

INSTANCE_CONFIG = REPO_ROOT / "infra" / "dagster" / "dagster.yaml"


def prepare_dagster_home(settings: Settings) -> Path:
    """Create ``settings.dagster_home`` with the embedded instance config (run queue, storage under the state dir)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    return home
