"""Nothing outlives the platform: every process it starts carries a marker, and a watchdog kills what is left.

PR_SET_PDEATHSIG covers the supervisor's children, not their descendants: ``dagster dev`` starts a code server
and a gRPC API server of its own, and when ``dagster dev`` is killed hard they are re-parented to init and keep
running. So the supervisor puts ``CRYPTOLAKE_PLATFORM_RUN=<id>`` into the environment of everything it starts
(environments are inherited by every descendant, whatever session or process group it moves to), and starts a
watchdog in a session of its own (out of reach of a signal to the run command's process group) that holds the
read end of a pipe. When the supervisor dies, however it dies, the kernel closes the write end; the watchdog then
gives the services ``grace_s`` to stop on their own and kills every process that still carries the marker.

``python -m cryptolake.reaper --run-id ID`` is the watchdog; :func:`sweep` is also what a clean stop calls last.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

MARKER = "CRYPTOLAKE_PLATFORM_RUN"
PROC = Path("/proc")


def new_run_id() -> str:
    return uuid.uuid4().hex


def marked_processes(run_id: str, *, exclude: Iterable[int] = ()) -> list[int]:
    """The pids of live processes whose environment holds ``CRYPTOLAKE_PLATFORM_RUN=run_id`` (zombies left out)."""
    needle = f"{MARKER}={run_id}".encode()
    skip = {os.getpid(), *exclude}
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append(int(entry.name))
    return sorted(found)


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def sweep(run_id: str, *, grace_s: float = 5.0, exclude: Iterable[int] = ()) -> list[int]:
    """SIGTERM every marked process, SIGKILL those still alive after ``grace_s``; the pids found at first."""
    exclude = tuple(exclude)
    pids = marked_processes(run_id, exclude=exclude)
    if not pids:
        return []
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and marked_processes(run_id, exclude=exclude):
        time.sleep(0.2)
    for _ in range(10):  # a process may fork while we kill: repeat until none is left
        left = marked_processes(run_id, exclude=exclude)
        if not left:
            break
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.2)
    return pids


def start_watchdog(run_id: str, *, grace_s: float = 15.0, log_file: Path | None = None) -> subprocess.Popen:
    """Start ``python -m cryptolake.reaper`` in its own session, unmarked, reading a pipe this process holds open.

    Keep the returned process's ``stdin`` open for as long as the platform runs; close it to stop the watchdog
    (it sweeps first). The pipe is not inherited by other children (``close_fds``), so only our death closes it.
    """
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    out = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cryptolake.reaper", "--run-id", run_id, "--grace", str(grace_s)],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    finally:
        if log_file is not None:
            out.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cryptolake.reaper",
        description="Watchdog of one `cryptolake run`: waits until its standard input closes (the supervisor "
        "stopped or died), then stops every process whose environment carries CRYPTOLAKE_PLATFORM_RUN=RUN_ID. "
        "Started by the supervisor; there is no need to run it by hand.",
    )
    parser.add_argument("--run-id", required=True, help="the platform run whose processes to stop")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds the services get to stop by themselves (15)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the supervisor; we wait for the pipe
    while sys.stdin.buffer.read(65536):
        pass
    deadline = time.monotonic() + args.grace
    while time.monotonic() < deadline and marked_processes(args.run_id):
        time.sleep(0.5)
    killed = sweep(args.run_id, grace_s=5.0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} reaper: platform run {args.run_id} ended; {len(killed)} process(es) still running, stopped"
          + (f": {killed}" if killed else ""), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
