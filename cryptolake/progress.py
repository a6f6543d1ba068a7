"""Progress output of the CLIs: one human-readable line per step or period, on stderr.

Long work (a backfill over many days, a Bronze writer draining a backlog) reports how far it is, how fast it goes
and when it will be done. The lines are plain text (no cursor tricks) so they read the same in a terminal, in
``.state/logs/*.log`` and in CI output, and they never garble the structlog lines printed between them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``1m15s``; ``None`` (unknown) -> ``?``."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_bar(done: int, total: int, width: int = 20) -> str:
    """``[#####---------------]`` for ``done`` of ``total``."""
    filled = 0 if total <= 0 else min(width, int(width * done / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Progress:
    """Counts finished units of work out of a known total and prints a line per step with rate and ETA."""

    def __init__(self, label: str, total: int, unit: str = "items", stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._stream = stream or sys.stderr

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta_s(self) -> float | None:
        """Remaining time at the average pace so far (None before the first unit is done)."""
        finished = self.done + self.failed
        if finished == 0:
            return None
        return self.elapsed_s / finished * (self.total - finished)

    def line(self, message: str) -> str:
        finished = self.done + self.failed
        percent = 100 * finished / self.total if self.total else 100.0
        return (
            f"{self.label} {format_bar(finished, self.total)} {finished}/{self.total} {self.unit} "
            f"({percent:.0f}%, {self.failed} failed) · {message} · elapsed {format_duration(self.elapsed_s)}, "
            f"ETA {format_duration(self.eta_s)}"
        )

    def step(self, message: str, ok: bool = True) -> None:
        """Record one finished unit (``ok=False``: it failed) and print the progress line."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.emit(self.line(message))

    def emit(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


def drain_line(label: str, done: int, rate_per_s: float, remaining: int | None, extra: str = "") -> str:
    """A status line for open-ended streams: ``done`` so far at ``rate_per_s``, ``remaining`` still queued."""
    if remaining is None:
        backlog = "backlog ?"
    elif remaining == 0:
        backlog = "caught up"
    else:
        eta = remaining / rate_per_s if rate_per_s > 0 else None
        backlog = f"backlog {remaining:,} (ETA {format_duration(eta)})"
    tail = f" · {extra}" if extra else ""
    return f"{label}: {done:,} done · {rate_per_s:,.0f}/s · {backlog}{tail}"
