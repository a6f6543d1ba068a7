"""Benchmark: the platform's CPU when no trades arrive.

1. Starts the real platform (``cryptolake run``, the embedded default, on ports of its own and a temporary state
   directory) and waits until Bronze holds trades and ``--runs`` runs of ``silver_gold_daily`` have succeeded.
2. Pauses the exchange simulator (``GET /simulator/pause``: connections stay open, no trade is generated), then
   waits until the platform has caught up: no run queued or in progress and Bronze unchanged for ``--settle``
   seconds.
3. Samples, every second for ``--seconds`` seconds, the CPU time (user + system) of every process the platform
   started (they carry its run marker, see ``cryptolake.reaper``), and reports the average cores used, per service
   and in total, and how many runs started meanwhile (target: none, and <= 0.3 cores).
4. Writes the section "Idle: CPU with no trades" of ``docs/benchmarks.md`` and stops the platform.

Run: ``.venv/bin/python benchmarks/idle_benchmark.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from docs_section import write_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "Idle: CPU with no trades"
TARGET_CORES = 0.3
PORTS = {
    "CRYPTOLAKE_API_PORT": 18410, "CRYPTOLAKE_DASHBOARD_PORT": 18411, "CRYPTOLAKE_DAGSTER_PORT": 18412,
    "CRYPTOLAKE_SIMULATOR_PORT": 18413, "CRYPTOLAKE_SIMULATOR_FUTURES_PORT": 18414,
    "CRYPTOLAKE_BATCH_SOURCES_PORT": 18415, "CRYPTOLAKE_LOCAL_BROKER_PORT": 18416,
}  # fmt: skip
_STARTED = time.monotonic()
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Average CPU of the real platform (cryptolake run) over a minute with the simulator paused."
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window (60)")
    parser.add_argument("--runs", type=int, default=2, help="silver_gold_daily runs to wait for first (2)")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds Bronze must stay unchanged (45)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up waiting after this long (900)")
    parser.add_argument("--keep-state", action="store_true", help="keep the temporary state directory")
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help=f"results file (default {DOCS_FILE})")
    parser.add_argument("--no-docs", action="store_true", help="do not write the results file")
    return parser.parse_args(argv)


def wait_for(what: str, condition, timeout: float, every: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def platform_processes(marker: str, run_id: str) -> dict[int, str]:
    """pid -> service name of every process carrying the platform run's marker."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{marker}={run_id}".encode() in variables:
            found[int(entry.name)] = service_of(command)
    return found


def service_of(command: str) -> str:
    for needle, name in (
        ("spark_host", "spark-host"), ("bronze_writer", "bronze-writer"), ("streaming.producer", "producer"),
        ("simulators.binance", "simulator"), ("simulators.batch_apis", "batch-sources"), ("serving.api", "api"),
        ("streamlit", "dashboard"), ("tansu", "broker"), ("code-server", "dagster code server"),
        ("dagster-daemon", "dagster daemon"), ("dagster-webserver", "dagster webserver"), ("reaper", "reaper"),
        ("api grpc", "dagster code server"), ("execute_run", "dagster run"), ("dagster", "dagster dev"),
    ):  # fmt: skip
        if needle in command:
            return name
    return "java (Spark)" if "java" in command else command.split(" ")[0].rsplit("/", 1)[-1]


def cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


def run_id_of(state: Path, marker: str) -> str | None:
    wanted = f"CRYPTOLAKE_STATE_DIR={state}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                variables = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in variables:
                for variable in variables:
                    if variable.startswith(f"{marker}=".encode()):
                        return variable.split(b"=", 1)[1].decode()
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="cryptolake-idle-"))
    state = root / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAKE_") and k != "DAGSTER_HOME"}
    env |= {key: str(port) for key, port in PORTS.items()} | {"CRYPTOLAKE_STATE_DIR": str(state)}
    os.environ["DAGSTER_HOME"] = str(state / "dagster")
    cli = Path(sys.executable).parent / "cryptolake"
    platform_log = root / "run.log"
    log(f"starting the platform (log: {platform_log})")
    with platform_log.open("wb") as out:
        platform = subprocess.Popen(
            [str(cli), "run"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        return measure(args, state, platform)
    finally:
        os.killpg(platform.pid, signal.SIGTERM)
        try:
            platform.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(platform.pid, signal.SIGKILL)
        if args.keep_state:
            log(f"state kept in {state}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def measure(args: argparse.Namespace, state: Path, platform: subprocess.Popen) -> int:
    import dagster as dg

    from cryptolake.lakehouse.catalog import get_catalog
    from cryptolake.reaper import MARKER
    from cryptolake.settings import Settings
    from cryptolake.tables import BRONZE_TRADES

    settings = Settings(state_dir=state, catalog_uri=None, warehouse=None)
    job = "silver_gold_daily"

    def alive() -> None:
        if platform.poll() is not None:
            raise RuntimeError(f"cryptolake run exited with {platform.returncode}")

    def webserver_up() -> bool:
        alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['CRYPTOLAKE_DAGSTER_PORT']}/server_info", timeout=5):
                return True
        except OSError:
            return False

    # Only once Dagster is up: opening its SQLite storage while `dagster dev` creates it races on the migrations.
    wait_for("the Dagster webserver", webserver_up, args.timeout)
    instance = dg.DagsterInstance.get()

    def runs(*statuses: dg.DagsterRunStatus) -> list:
        alive()
        return instance.get_run_records(dg.RunsFilter(job_name=job, statuses=list(statuses)))

    wait_for(f"{args.runs} successful {job} runs", lambda: len(runs(dg.DagsterRunStatus.SUCCESS)) >= args.runs,
             args.timeout)  # fmt: skip
    log(f"{len(runs(dg.DagsterRunStatus.SUCCESS))} {job} runs succeeded; pausing the simulator")
    simulator = f"http://127.0.0.1:{PORTS['CRYPTOLAKE_SIMULATOR_PORT']}"
    with urllib.request.urlopen(f"{simulator}/simulator/pause", timeout=10) as response:
        assert json.loads(response.read())["paused"] is True

    bronze_state = {"snapshot": None, "since": time.monotonic()}

    def settled() -> bool:
        snapshot = get_catalog(settings).load_table(BRONZE_TRADES.identifier).current_snapshot()
        current = snapshot.snapshot_id if snapshot else None
        if current != bronze_state["snapshot"]:
            bronze_state.update(snapshot=current, since=time.monotonic())
        busy = runs(dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED)  # fmt: skip
        return not busy and time.monotonic() - bronze_state["since"] >= args.settle

    wait_for("no run in progress and Bronze unchanged", settled, args.timeout, every=3.0)
    run_id = run_id_of(state, MARKER)
    assert run_id, "no process of the platform found"
    runs_before = len(runs())
    log(f"idle; measuring {args.seconds:.0f}s of CPU of the platform's processes")
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    names: dict[int, str] = {}
    started = time.monotonic()
    initial = True
    while True:
        for pid, name in platform_processes(MARKER, run_id).items():
            ticks = cpu_ticks(pid)
            if ticks is None:
                continue
            names[pid] = name
            first.setdefault(pid, ticks if initial else 0)  # a process started meanwhile counts from 0
            last[pid] = ticks
        initial = False
        if time.monotonic() - started >= args.seconds:
            break
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    runs_during = len(runs()) - runs_before
    per_service: dict[str, float] = defaultdict(float)
    for pid in last:
        per_service[names[pid]] += (last[pid] - first[pid]) / CLOCK_TICKS / elapsed
    total = sum(per_service.values())
    ranking = sorted(per_service.items(), key=lambda item: -item[1])
    for name, cores in ranking:
        log(f"  {name:22s} {cores:.3f} cores")
    verdict = f"idle CPU <= {TARGET_CORES} cores: {'met' if total <= TARGET_CORES else 'NOT met'} ({total:.2f} cores)"
    log(f"total {total:.3f} cores over {elapsed:.0f}s, {len(last)} processes, runs started meanwhile: {runs_during}")
    log(verdict)
    if not args.no_docs:
        lines = [
            f"## {SECTION_TITLE}",
            "",
            f"`.venv/bin/python benchmarks/idle_benchmark.py` — the real `cryptolake run` (embedded default), after "
            f"{args.runs} `{job}` runs, with the simulator paused and the platform caught up; CPU (user + system) "
            f"of its {len(last)} processes over {elapsed:.0f} s. Runs started meanwhile: {runs_during}.",
            "",
            "| process | cores |",
            "|---|---|",
            *(f"| {name} | {cores:.3f} |" for name, cores in ranking),
            f"| **total** | **{total:.3f}** |",
            "",
            f"- {verdict}",
        ]
        write_section(args.docs, SECTION_TITLE, "\n".join(lines) + "\n")
        log(f"wrote section '{SECTION_TITLE}' of {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
