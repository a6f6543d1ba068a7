"""The dbt project and CLI resource. The profile is generated from the platform's Spark settings."""

from __future__ import annotations

from functools import cache

from cryptolake.lakehouse.dbt_profile import DBT_PROJECT_DIR, write_dbt_profile
from dagster_dbt import DbtCliResource, DbtProject

from cryptolake.settings import Settings, get_settings


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
        project.preparer.prepare(project)
    return project


def build_dbt_resource(settings: Settings) -> DbtCliResource:
    project = dbt_project(str(settings.state_dir))
    return DbtCliResource(project_dir=project, profiles_dir=str(project.profiles_dir))
