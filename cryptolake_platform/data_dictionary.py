"""The data dictionary of the Gold tables, rendered from the dbt project's yml (the one place columns are described).

``python -m cryptolake_platform.data_dictionary --write`` regenerates ``docs/data_dictionary.md``; a test keeps it current. Column
descriptions written as ``{{ doc("name") }}`` are resolved from the project's ``{% docs name %}`` blocks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cryptolake.settings import REPO_ROOT

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
MARTS_DIR = DBT_PROJECT_DIR / "models" / "marts"
DICTIONARY_PATH = REPO_ROOT / "docs" / "data_dictionary.md"

_DOCS_BLOCK = re.compile(r"{%\s*docs\s+(\w+)\s*%}(.*?){%\s*enddocs\s*%}", re.S)
_DOC_CALL = re.compile(r"""{{\s*doc\(\s*["'](\w+)["']\s*\)\s*}}""")


def _doc_blocks(project_dir: Path) -> dict[str, str]:
    blocks: dict[str, str] = {}
    for path in sorted((project_dir / "models").rglob("*.md")):
        for name, text in _DOCS_BLOCK.findall(path.read_text()):
            blocks[name] = " ".join(text.split())
    return blocks


def _text(value: Any, blocks: dict[str, str]) -> str:
    text = " ".join(str(value or "").split())
    text = _DOC_CALL.sub(lambda match: blocks[match.group(1)], text)
    return text.replace("|", "\\|")


def _tests(column: dict[str, Any]) -> str:
    names = []
    for test in column.get("data_tests", []) or []:
        names.append(test if isinstance(test, str) else next(iter(test)))
    return ", ".join(names)


def render(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """The dictionary as Markdown: one section per Gold model (its description, grain tests), a row per column."""
    blocks = _doc_blocks(project_dir)
    models = []
    for path in sorted((project_dir / "models" / "marts").glob("*.yml")):
        models += yaml.safe_load(path.read_text()).get("models", [])
    lines = [
        "# Gold data dictionary",
        "",
        "Every column of the Gold tables (namespace `gold`), from the dbt models' yml in `dbt_project/models/marts/`.",
        "Generated: `python -m cryptolake_platform.data_dictionary --write` (a test fails when this file is not current).",
        "",
        "| table | what |",
        "|---|---|",
    ]
    for model in sorted(models, key=lambda m: m["name"]):
        lines.append(f"| [`gold.{model['name']}`](#gold{model['name']}) | {_text(model.get('description'), blocks)} |")
    for model in sorted(models, key=lambda m: m["name"]):
        lines += ["", f"## gold.{model['name']}", "", _text(model.get("description"), blocks), ""]
        grain = [
            test
            for test in model.get("data_tests", []) or []
            if isinstance(test, dict) and "unique_combination" in test
        ]
        if grain:
            columns = grain[0]["unique_combination"]["arguments"]["columns"]
            lines += [f"Grain: one row per ({', '.join(columns)}).", ""]
        lines += ["| column | description | tests |", "|---|---|---|"]
        for column in model.get("columns", []) or []:
            lines.append(f"| `{column['name']}` | {_text(column.get('description'), blocks)} | {_tests(column)} |")
    return "\n".join(lines) + "\n"


def write(path: Path = DICTIONARY_PATH) -> Path:
    path.write_text(render())
    return path


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cryptolake_platform.data_dictionary",
        description="Print the Gold data dictionary rendered from the dbt models' yml, or --write it to "
        f"{DICTIONARY_PATH.relative_to(REPO_ROOT)}.",
    )
    parser.add_argument("--write", action="store_true", help=f"write {DICTIONARY_PATH.relative_to(REPO_ROOT)}")
    args = parser.parse_args(argv)
    if args.write:
        print(f"wrote {write()}")
    else:
        print(render(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
