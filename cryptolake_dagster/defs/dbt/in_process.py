"""``dbt build`` inside the run's process: the Gold build shares the run's Spark session and a parsed manifest.

dbt-spark's session mode takes its session from ``SparkSession.builder.getOrCreate()``: inside a run that is the
run's own session (JVM up, Iceberg catalog loaded), so a build starts no JVM and no Python process. The manifest
is parsed once per process and reused by every build (dbt reparses the whole project whenever ``--vars`` change,
and every run has its own window): it is parsed with the vars that stay the same from run to run, and each build
passes the run's window as ``--vars``. Models read the window with ``var()`` when they are compiled, at build time;
the daily models' target-side MERGE predicates come from ``merge_window`` (``macros/merge_window.sql``), also at build
time.

dbt's result events are turned into Dagster events by dagster-dbt (``DbtCoreCliEventMessage``), exactly as for a
dbt subprocess, and the run's asset subset is selected the same way (``get_subset_selection_for_context``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject
from dagster_dbt.asset_utils import get_manifest_and_translator_from_dbt_assets, get_subset_selection_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from cryptolake.logging import get_logger
from cryptolake_dagster.defs.dbt.profile import DBT_STATEMENT_KEYS, project_sources

log = get_logger(__name__)

#: dbt events logged to the run's log (result lines of models and tests; the run's start and end).
_LOGGED_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "EndOfRunSummary", "StatsLine"})
_RESULT_EVENTS = frozenset({"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult"})
_lock = threading.Lock()
_parsed: dict[tuple[str, str], Any] = {}  # (project files state, static vars) -> dbt Manifest


class DbtBuildError(dg.Failure):
    """``dbt build`` failed: the failing nodes and their messages are in the description."""


def _project_args(project: DbtProject, target_path: Path | None = None) -> list[str]:
    return [
        "--project-dir", str(project.project_dir),
        "--profiles-dir", str(project.profiles_dir),
        "--target-path", str(target_path or project.target_path),
        "--log-path", str(Path(project.target_path).parent / "logs"),
    ]  # fmt: skip


def _sources_state(project_dir: Path) -> str:
    """The newest modification time of the project's files (a changed model must be parsed again)."""
    return str(max(path.stat().st_mtime_ns for path in project_sources(project_dir)))


def parsed_manifest(project: DbtProject, static_vars: Mapping[str, Any]) -> Any:
    """The project's dbt ``Manifest``, parsed with ``static_vars`` once per process (and again when a file of the
    project changed since: dbt's partial parse then reparses only what changed)."""
    from dbt.cli.main import dbtRunner

    vars_text = json.dumps(dict(static_vars), sort_keys=True)
    state = _sources_state(Path(project.project_dir))
    with _lock:
        if (state, vars_text) in _parsed:
            return _parsed[state, vars_text]
        started = time.monotonic()
        # One parse at a time per target directory across processes (two runs may start together).
        lock_path = Path(project.target_path).parent / ".parse.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            result = dbtRunner().invoke(["parse", "--quiet", *_project_args(project), "--vars", vars_text])
        if not result.success or result.result is None:
            raise RuntimeError(
                f"dbt parse of {project.project_dir} failed ({result.exception}); run "
                f"`dbt parse --project-dir {project.project_dir} --profiles-dir {project.profiles_dir}` to see why"
            )
        _parsed.clear()
        _parsed[state, vars_text] = result.result
        log.info("dbt manifest parsed in process", seconds=round(time.monotonic() - started, 2))
        return result.result


def build_in_process(
    context: dg.AssetExecutionContext,
    project: DbtProject,
    static_vars: Mapping[str, Any],
    run_vars: Mapping[str, Any],
    first: Sequence[Sequence[str]] = (),
) -> Iterator[Any]:
    """``dbt build`` of the asset subset of ``context`` with ``run_vars`` over ``static_vars``, in this process;
    yields the Dagster events of its models (``Output``) and tests (``AssetCheckResult``), then raises
    :class:`DbtBuildError` when a node failed.

    When the run selects every model, the groups of models in ``first`` run before everything else, one group
    after the other (dbt's threads run a group's models side by side), then their tests, then a build of the rest:
    what readers wait for most (the bars) is committed before the tests and the daily models run, and a failed
    test of theirs still stops the models after them."""
    manifest_json, translator, _ = get_manifest_and_translator_from_dbt_assets([context.assets_def])
    selection, indirect = get_subset_selection_for_context(
        context=context,
        manifest=manifest_json,
        select=None,
        exclude=None,
        selector=None,
        dagster_dbt_translator=translator,
        current_dbt_indirect_selection_env=None,
    )
    if first and not selection:  # run `first`, then gate on their tests as dbt build would, then build the rest
        models = [model for group in first for model in group]
        phases = [
            *(["run", "--select", *group] for group in first),
            ["test", "--select", *models],
            ["build", "--exclude", *models],
        ]
    else:
        phases = [["build", *(["--indirect-selection", indirect] if indirect else []), *selection]]
    # Each build writes its artifacts (compiled SQL, run_results.json) into a folder of its own: runs may overlap.
    target_path = Path(project.target_path) / "builds" / context.run_id
    vars_arg = json.dumps({**static_vars, **run_vars}, sort_keys=True)
    # dbt sets its statement settings on the session it shares with the run (and, without a Spark host, with
    # every later run of this process): they are put back when the build ends.
    with _session_conf_restored(DBT_STATEMENT_KEYS):
        yield from _build_phases(
            context, project, static_vars, phases, vars_arg, manifest_json, translator, target_path
        )
    shutil.rmtree(target_path, ignore_errors=True)


@contextlib.contextmanager
def _session_conf_restored(keys: Iterable[str]) -> Iterator[None]:
    """Put the values of ``keys`` in this process's Spark session back as they were (unset if they were) on exit;
    nothing when the process has no session yet (dbt's first statement then creates it with its own settings)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._active_spark_context is None:
        yield
        return
    conf = SparkSession.builder.getOrCreate().conf
    saved = {key: conf.get(key, None) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                conf.unset(key)
            else:
                conf.set(key, value)


def _build_phases(
    context: dg.AssetExecutionContext,
    project: DbtProject,
    static_vars: Mapping[str, Any],
    phases: Sequence[Sequence[str]],
    vars_arg: str,
    manifest_json: Mapping[str, Any],
    translator: DagsterDbtTranslator,
    target_path: Path,
) -> Iterator[Any]:
    for phase in phases:
        command = [phase[0], "--vars", vars_arg, *phase[1:]]
        results, outcome = _invoke(context, project, static_vars, command, target_path)
        yield from _dagster_events(results, manifest_json, translator, context, target_path)
        failed = [r for r in results if r["data"].get("status", "").lower() in ("error", "fail")]
        if not outcome.success or failed:
            lines = [f"{r['data']['node_info']['unique_id']}: {r['info']['msg']}" for r in failed]
            if outcome.exception is not None:
                lines.append(f"dbt raised {type(outcome.exception).__name__}: {outcome.exception}")
            raise DbtBuildError(
                description=f"dbt build failed (artifacts in {target_path}):\n"
                + "\n".join(lines or ["(no node failed; see the run's dbt log)"])
            )


def _invoke(
    context: dg.AssetExecutionContext,
    project: DbtProject,
    static_vars: Mapping[str, Any],
    args: list[str],
    target_path: Path,
) -> tuple[list[dict[str, Any]], Any]:
    """One dbt command in this process on a copy of the parsed manifest; its node results (as dbt's JSON log
    events) and dbt's result."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    # A build compiles into the manifest's nodes (ephemeral CTEs injected, compiled SQL kept): each gets a copy.
    manifest = parsed_manifest(project, static_vars).deepcopy()
    results: list[dict[str, Any]] = []
    events_lock = threading.Lock()  # dbt calls back from each of its threads

    def on_event(event: Any) -> None:
        name = event.info.name
        if name not in _RESULT_EVENTS and name not in _LOGGED_EVENTS:
            return
        with events_lock:
            if name in _RESULT_EVENTS:
                results.append(msg_to_dict(event))
            if name in _LOGGED_EVENTS:
                context.log.info(event.info.msg)

    started = time.monotonic()
    command = [args[0], "--quiet", *_project_args(project, target_path), *args[1:]]
    outcome = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(command)
    context.log.info(
        f"dbt {' '.join(args[:1] + args[3:])[:200]}: {len(results)} nodes in {time.monotonic() - started:.1f}s"
    )
    return results, outcome


def _dagster_events(
    results: list[dict[str, Any]],
    manifest: Mapping[str, Any],
    translator: DagsterDbtTranslator,
    context: dg.AssetExecutionContext,
    target_path: Path,
) -> Iterator[Any]:
    for raw in results:
        message = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
        yield from message.to_default_asset_events(
            manifest=manifest, dagster_dbt_translator=translator, context=context, target_path=target_path
        )
