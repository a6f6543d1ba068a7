"""Nothing outlives the platform: a process tree like ``cryptolake run``'s (a supervisor, its service, and the
service's own child in a session of its own, as ``dagster dev`` starts its code server) is killed with SIGKILL at
the top, and the watchdog stops what the kernel's parent-death signal cannot reach."""

from __future__ import annotations

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
