"""Nothing outlives the platform: a process tree like ``cryptolake run``'s (a supervisor, its service, and the
service's own child in a session of its own, as ``dagster dev`` starts its code server) is killed with SIGKILL at
the top, and the watchdog stops what the kernel's parent-death signal cannot reach."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cryptolake.reaper import MARKER, marked_processes, new_run_id, sweep

# The supervisor: the watchdog first (unmarked), then the marker, then a service that starts a grandchild in a new
# session (re-parented to init when the service dies) and then ignores SIGTERM, like a stuck server.
SUPERVISOR = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from cryptolake.reaper import MARKER, start_watchdog
    run_id, pids_file = sys.argv[1], sys.argv[2]
    watchdog = start_watchdog(run_id, grace_s=2.0)
    os.environ[MARKER] = run_id
    service = subprocess.Popen([sys.executable, "-c", '''
    import signal, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"], start_new_session=True)
    print(grandchild.pid, flush=True)
    time.sleep(600)
    '''], stdout=subprocess.PIPE, start_new_session=True)
    grandchild = service.stdout.readline().decode().strip()
    with open(pids_file, "w") as out:
        out.write(f"{watchdog.pid} {service.pid} {grandchild}")
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_supervisor_killed_with_sigkill_leaves_no_process_behind(tmp_path: Path) -> None:
    run_id = new_run_id()
    pids_file = tmp_path / "pids"
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, run_id, str(pids_file)], env=env)
    try:
        assert _wait(lambda: pids_file.exists() and len(pids_file.read_text().split()) == 3, 60), "tree not started"
        watchdog, service, grandchild = map(int, pids_file.read_text().split())
        # /proc shows the environment a process was started with: the supervisor and its watchdog are unmarked
        assert marked_processes(run_id) == sorted((service, grandchild))
        assert all(_alive(pid) for pid in (watchdog, service, grandchild))

        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=10)
        # Nothing signals the service (no parent-death signal here), and the grandchild ignores SIGTERM: only the
        # watchdog's sweep (SIGTERM, then SIGKILL) can stop them.
        assert _wait(lambda: not _alive(service) and not _alive(grandchild), 30), marked_processes(run_id)
        assert marked_processes(run_id) == []
        assert _wait(lambda: not _alive(watchdog), 15), "the watchdog did not exit after its sweep"
    finally:
        supervisor.kill()
        sweep(run_id, grace_s=1.0)


def test_sweep_stops_only_the_processes_of_its_run(tmp_path: Path) -> None:
    mine, other = new_run_id(), new_run_id()
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    procs = {
        run: subprocess.Popen(sleep, env={**os.environ, MARKER: run}, start_new_session=True) for run in (mine, other)
    }
    try:
        assert _wait(lambda: marked_processes(mine) == [procs[mine].pid], 10)
        assert sweep(mine, grace_s=5.0) == [procs[mine].pid]
        assert procs[mine].wait(timeout=10) == -signal.SIGTERM
        assert procs[other].poll() is None and marked_processes(other) == [procs[other].pid]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def _run_ids_of(state_dir: Path) -> set[str]:
    """The platform-run markers of the processes started for the lakehouse at ``state_dir``."""
    wanted = f"CRYPTOLAKE_STATE_DIR={state_dir}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in variables:
            found |= {v.split(b"=", 1)[1].decode() for v in variables if v.startswith(f"{MARKER}=".encode())}
    return found


def _dagster_servers(run_id: str) -> list[int]:
    """Marked processes that are Dagster's own servers (grandchildren of the supervisor: code server, gRPC API)."""
    servers = []
    for pid in marked_processes(run_id):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "dagster" in command and ("code-server" in command or "grpc" in command):
            servers.append(pid)
    return servers


def test_kill_9_of_cryptolake_run_during_a_run_leaves_nothing_running(tmp_path: Path) -> None:
    """The real platform, killed with SIGKILL (its whole process group, as a terminal's kill does) once Dagster's
    code server is up: within a minute no process it started is left."""
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOLAKE_") and k != "DAGSTER_HOME"}
    env |= {
        "CRYPTOLAKE_STATE_DIR": str(state), "CRYPTOLAKE_API_PORT": "18310", "CRYPTOLAKE_DASHBOARD_PORT": "18311",
        "CRYPTOLAKE_DAGSTER_PORT": "18312", "CRYPTOLAKE_SIMULATOR_PORT": "18313",
        "CRYPTOLAKE_SIMULATOR_FUTURES_PORT": "18314", "CRYPTOLAKE_BATCH_SOURCES_PORT": "18315",
        "CRYPTOLAKE_LOCAL_BROKER_PORT": "18316",
    }  # fmt: skip
    cli = Path(sys.executable).parent / "cryptolake"
    log = open(tmp_path / "run.log", "wb")
    run = subprocess.Popen([str(cli), "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    run_id = ""
    try:
        assert _wait(lambda: len(_run_ids_of(state)) == 1, 120), (tmp_path / "run.log").read_text()[-3000:]
        (run_id,) = _run_ids_of(state)
        assert _wait(lambda: _dagster_servers(run_id), 240), (tmp_path / "run.log").read_text()[-3000:]
        before = marked_processes(run_id)
        assert len(before) >= 5  # broker, services and Dagster's own servers

        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        assert _wait(lambda: not marked_processes(run_id), 60), {
            pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in marked_processes(run_id)
        }
        reaper_log = state / "logs" / "reaper.log"
        ended = f"reaper: platform run {run_id} ended"
        assert _wait(lambda: ended in reaper_log.read_text(), 30), reaper_log.read_text()  # it did its sweep
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        if run_id:
            sweep(run_id, grace_s=1.0)
        log.close()
