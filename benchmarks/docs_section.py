"""The benchmarks' report: each benchmark owns one ``## <title>`` section of docs/benchmarks.md and rewrites only it."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of ``path`` by ``body``; other sections stay as they are."""
    heading = f"## {title}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = [*lines[:start], *body.rstrip("\n").splitlines(), *([""] if end < len(lines) else []), *lines[end:]]
        text = "\n".join(new) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
