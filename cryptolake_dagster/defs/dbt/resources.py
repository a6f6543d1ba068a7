"""The dbt project and CLI resource. The profile is generated from the platform's Spark settings."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from cryptolake.settings import Settings, get_settings
from cryptolake_dagster.defs.dbt.profile import DBT_PROJECT_DIR, write_dbt_profile


@cache
def dbt_project(state_dir: str | None = None) -> DbtProject:
    """The dbt project, with its manifest prepared (``dbt parse``) when missing."""
    settings = Settings(state_dir=state_dir) if state_dir else get_settings()
    profiles_dir = write_dbt_profile(settings)
    project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=profiles_dir,
        target_path=settings.state_dir.resolve() / "dbt" / "target",
    )
    if not project.manifest_path.exists():
        _parse(project)
    return project


def dbt_executable() -> str:
    """The dbt beside this interpreter: PATH may not include the virtualenv (e.g. under `dagster dev`)."""
    return str(Path(sys.executable).parent / "dbt")


def _parse(project: DbtProject) -> None:
    """``dbt parse`` to write the manifest the asset definitions are built from (no Spark session needed)."""
    result = subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(project.project_dir), "--profiles-dir",
         str(project.profiles_dir), "--target-path", str(project.target_path), "--quiet"],
        capture_output=True, text=True, env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"dbt parse failed for {project.project_dir}:\n{result.stdout}{result.stderr}")


def build_dbt_resource(settings: Settings) -> DbtCliResource:
    project = dbt_project(str(settings.state_dir))
    return DbtCliResource(project_dir=project, profiles_dir=str(project.profiles_dir), dbt_executable=dbt_executable())
