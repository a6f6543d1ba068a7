"""The dbt project (profile generated from the platform's Spark settings, manifest parsed) and the dbt CLI resource."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

from cryptolake.lakehouse.spark import prepare_spark_environment
from cryptolake.processes import environ_overlay
from cryptolake.settings import Settings
from cryptolake_dagster.defs.dbt.profile import (
    DBT_PROJECT_DIR,
    dbt_cli_env,
    dbt_target_path,
    project_sources,
    write_dbt_profile,
)
from cryptolake_dagster.resources import LakehouseConfig


def dbt_project(settings: Settings) -> DbtProject:
    """The dbt project with the profile written for ``settings``; ``dbt parse`` writes the manifest when it is
    missing or older than a file of the project (a pulled or edited model must show up as an asset)."""
    project = DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=write_dbt_profile(settings),
        target_path=dbt_target_path(settings),
    )
    if _manifest_is_stale(project):
        _parse(project)
    return project


def _manifest_is_stale(project: DbtProject) -> bool:
    """No manifest, or a model, macro, test or project file changed after it was written."""
    if not project.manifest_path.exists():
        return True
    written = project.manifest_path.stat().st_mtime
    return any(path.stat().st_mtime > written for path in project_sources(Path(project.project_dir)))


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


class CryptoLakeDbtCliResource(DbtCliResource):
    """dagster-dbt's CLI resource whose dbt subprocesses run against the lakehouse.

    dbt-spark (session mode) starts its own Spark JVM in the dbt subprocess: before a run uses dbt, the lakehouse
    is prepared for Spark (catalog tables, JAVA_HOME, the Python of Spark's workers), and every ``dbt`` command gets
    ``env`` (``dbt_cli_env``: the profile directory, dbt's log path, a quiet Spark log configuration) on top of the
    process environment.
    """

    lakehouse: LakehouseConfig
    env: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, project: DbtProject) -> CryptoLakeDbtCliResource:
        return cls(
            project_dir=project,
            profiles_dir=str(project.profiles_dir),
            dbt_executable=dbt_executable(),
            lakehouse=LakehouseConfig.from_settings(settings),
            env=dbt_cli_env(settings),
        )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        prepare_spark_environment(self.lakehouse.settings())
        super().setup_for_execution(context)

    def cli(self, args: Sequence[str], **kwargs: Any) -> DbtCliInvocation:
        # dagster-dbt builds the subprocess environment from os.environ (``cli`` takes no environment): ``env`` is
        # laid over it while the subprocess starts, and only then (runs execute their steps in one thread).
        with environ_overlay(self.env):
            return super().cli(args, **kwargs)
