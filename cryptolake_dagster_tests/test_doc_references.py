"""Docs and docstrings name modules, files and functions that exist (a stale reference fails here).

Checked: every ``package.module[.name]`` of our packages and every repository path (``cryptolake/tables.py``,
``simulators/binance/``) written in the Markdown docs and in the source files (docstrings, comments, help texts).
"""

from __future__ import annotations

import re
from pathlib import Path

from cryptolake.broker import TRADES_DLQ_TOPIC, TRADES_TOPIC

REPO = Path(__file__).resolve().parents[1]
#: Names that look like references but are not: Kafka topics, the backfill run tag.
NOT_REFERENCES = {TRADES_TOPIC, TRADES_DLQ_TOPIC, "cryptolake/backfill"}
PACKAGES = ("cryptolake", "cryptolake_dagster", "cryptolake_platform", "simulators", "streaming", "serving")
TOP_DIRS = (*PACKAGES, "benchmarks", "dbt_project", "docs", "infra", "cryptolake_dagster_tests")
_PACKAGE_ALT = "|".join(sorted(PACKAGES, key=len, reverse=True))
DOTTED = re.compile(rf"(?<![\w./-])((?:{_PACKAGE_ALT})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?![\w-])")
PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(TOP_DIRS)})/[\w./{{}}*<>-]*)")


def _defines(path: Path, name: str) -> bool:
    text = path.read_text(encoding="utf-8")
    return None is not re.search(
        rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^\s*{name}\s*[:=]|\bimport\b.*\b{name}\b", text, re.M
    )


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if not base.is_dir() else base / "__init__.py"
        if module.is_file():
            rest = parts[cut:]
            if not rest:
                return True
            return _defines(module, rest[0])
        if base.is_dir() and cut == len(parts):
            return True
    return False


def _path_exists(text: str) -> bool:
    text = text.rstrip(".,:;)")
    if any(mark in text for mark in "{}*<>"):  # a pattern: check the part before it
        text = re.split(r"[{}*<>]", text)[0].rsplit("/", 1)[0]
    return (REPO / text).exists() or (REPO / text.rstrip("/")).exists()


def _sources() -> list[Path]:
    files = [*REPO.glob("*.md"), *REPO.glob("docs/**/*.md"), *REPO.glob("benchmarks/*.md"), *REPO.glob("*/README.md")]
    for package in (*PACKAGES, "benchmarks"):
        files.extend((REPO / package).rglob("*.py"))
    return sorted(set(files))


def _references(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        found.extend((number, "module", match) for match in DOTTED.findall(line))
        found.extend((number, "path", match) for match in PATH.findall(line))
    return found


def test_every_reference_resolves() -> None:
    stale = []
    for path in _sources():
        for number, kind, reference in _references(path):
            if reference in NOT_REFERENCES:
                continue
            ok = _resolves(reference) if kind == "module" else _path_exists(reference)
            if not ok:
                stale.append(f"{path.relative_to(REPO)}:{number}: {reference}")
    assert not stale, "references to modules, names or files that do not exist:\n" + "\n".join(stale)


def test_the_check_can_fail() -> None:
    assert _resolves("cryptolake.tables.ALL_TABLES") and _resolves("simulators.binance")
    assert not _resolves("cryptolake.tables.NO_SUCH_NAME") and not _resolves("cryptolake.runtime.supervisor")
    assert _path_exists("cryptolake/tables.py") and not _path_exists("cryptolake/contract.py")
