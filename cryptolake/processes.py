"""Child-process hygiene: children die with their parent, even when the parent is killed with SIGKILL."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` asking Linux to send ``sig`` to the child when its parent thread exits."""

    def _preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return _preexec


def stop_process(proc: subprocess.Popen, timeout: float = 15.0, group: bool = False) -> int | None:
    """SIGTERM the process and wait; SIGKILL it if it does not exit in time.

    With ``group`` (the child leads its own process group), only the leader gets SIGTERM — it shuts its own
    children down in order (a Spark driver needs its JVM until the last commit) — and whatever is left of the
    group afterwards is SIGKILLed, so nothing survives.
    """
    code = proc.poll()
    if code is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = proc.wait(timeout=5)
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return code


@contextlib.contextmanager
def environ_overlay(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` over ``os.environ`` inside the block (the previous values, or their absence, restored afterwards)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
