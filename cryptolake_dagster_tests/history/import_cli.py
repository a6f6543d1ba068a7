"""Running ``cryptolake import`` against a lakehouse of the test's own, and reading a table of it back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptolake.lakehouse.catalog import get_catalog
from cryptolake.settings import REPO_ROOT, Settings


def run_import(state: Path, *args: str) -> subprocess.CompletedProcess:
    """The real ``cryptolake import ARGS`` in the embedded profile, with ``state`` as its state directory."""
    env = {**os.environ, "CRYPTOLAKE_STATE_DIR": str(state)}
    for key in ("CRYPTOLAKE_PROFILE", "CRYPTOLAKE_CATALOG_URI", "CRYPTOLAKE_WAREHOUSE"):
        env.pop(key, None)
    command = [str(Path(sys.executable).parent / "cryptolake"), "import", *args]
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def table_rows(state: Path, identifier: str) -> list[dict]:
    """Every row of ``identifier`` in the lakehouse under ``state``, read with pyiceberg."""
    catalog = get_catalog(Settings(state_dir=state, profile="local", catalog_uri=None, warehouse=None))
    return catalog.load_table(identifier).scan().to_arrow().to_pylist()
