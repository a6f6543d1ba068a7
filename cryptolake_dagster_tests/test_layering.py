"""The direction of imports (docs/architecture.md), enforced two ways.

* Statically: every ``import`` statement of every module of a package, including imports inside functions, names
  no forbidden package.
* At run time: importing every module of a package in a clean interpreter loads no forbidden package (this also
  catches a forbidden package pulled in through a third-party library).

Layers, bottom to top: ``cryptolake`` (the core) <- ``streaming``, ``serving``, ``cryptolake_dagster`` (siblings that
know only the core) <- ``cryptolake_platform`` (the ``cryptolake`` command and the supervisor, above all of them).
``simulators`` (local stand-ins for Binance, CoinGecko and Fear & Greed) import none of our packages.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ORCHESTRATION = ("dagster", "dagster_dbt", "dagster_pyspark", "dagster_aws", "dagster_pipes", "dagster_webserver")
DBT = ("dbt",)
WEB = ("fastapi", "starlette", "uvicorn", "streamlit")
OUR_PACKAGES = {"cryptolake", "simulators", "streaming", "serving", "cryptolake_dagster", "cryptolake_platform"}

#: package (or subpackage) -> modules it must never import (a name forbids the module and everything below it).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cryptolake": (*ORCHESTRATION, *DBT, *WEB, "soda", "streaming", "serving", "simulators", "cryptolake_dagster",
                   "cryptolake_platform"),
    "streaming": (*ORCHESTRATION, *DBT, *WEB, "soda", "serving", "simulators", "cryptolake_dagster",
                  "cryptolake_platform"),
    "serving": (*ORCHESTRATION, *DBT, "soda", "streaming", "simulators", "cryptolake_dagster", "cryptolake_platform"),
    # the dashboard reads the lake only through the API
    "serving.dashboard": ("serving.api", "pyiceberg", "pyspark", "fastapi"),
    "cryptolake_dagster": (*WEB, "streaming", "serving", "simulators", "cryptolake_platform"),
    # stand-ins for the outside world share no code with what they stand in front of
    "simulators": (*ORCHESTRATION, *DBT, *WEB, "soda", *sorted(OUR_PACKAGES - {"simulators"})),
}  # fmt: skip


def _modules(package: str) -> list[tuple[str, Path]]:
    root = REPO.joinpath(*package.split("."))
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imported(path: Path, module: str) -> set[str]:
    """Every module an import statement in ``path`` names, anywhere in the file (relative imports resolved)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _violations(package: str, imported: set[str]) -> set[str]:
    return {
        forbidden
        for forbidden in FORBIDDEN[package]
        if any(name == forbidden or name.startswith(forbidden + ".") for name in imported)
    }


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_forbidden_package(package: str) -> None:
    problems = []
    for module, path in _modules(package):
        bad = _violations(package, _imported(path, module))
        if bad:
            problems.append(f"{path.relative_to(REPO)} imports {', '.join(sorted(bad))}")
    assert not problems, f"{package} must not import {FORBIDDEN[package]}:\n" + "\n".join(problems)


_PROBE = """
import importlib, json, sys
modules = json.loads(sys.argv[1])
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported, so a module that cannot be imported is seen too
        failed[name] = f"{type(exc).__name__}: {exc}"
loaded = sorted(sys.modules)
print(json.dumps({"loaded": loaded, "failed": failed}))
"""


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_a_package_loads_no_forbidden_package(package: str, tmp_path: Path) -> None:
    modules = [
        module
        for module, _ in _modules(package)
        # entry points run their CLI when imported; the static test covers their imports
        # (and Streamlit page scripts render when imported)
        if not module.endswith("__main__") and not module.startswith("serving.dashboard.app")
    ]
    env = {"PATH": "/usr/bin:/bin", "CRYPTOLAKE_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert not report["failed"], f"modules of {package} that do not import: {report['failed']}"
    bad = _violations(package, set(report["loaded"]))
    assert not bad, f"importing {package} loaded {sorted(bad)}; it must stay free of {FORBIDDEN[package]}"


def test_the_rules_cover_every_package() -> None:
    """A new top-level package must be given its place in the layers (here and in docs/architecture.md)."""
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")}
    assert packages == OUR_PACKAGES, f"unplaced or missing packages: {packages ^ OUR_PACKAGES}"
    assert {name.split(".")[0] for name in FORBIDDEN} == OUR_PACKAGES - {"cryptolake_platform"}
