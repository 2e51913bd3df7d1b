"""The docs say what the code and the records say: the shipped models' numbers in README and
trained/RESULTS.md are those of their metrics.json (and the ensemble's of trained/ensemble.json),
and docs/tools.md lists every tool."""

from __future__ import annotations

import re

import pytest

from fer_core.fileio import read_json
from fer_core.paths import PROJECT_ROOT

TRAINED = PROJECT_ROOT / "trained"
SHIPPED = sorted(p.parent.name for p in TRAINED.glob("*/metrics.json") if not p.parent.name.startswith("."))


def numbers(record: dict, with_macro: bool = False) -> list[str]:
    """What a table shows of a record: accuracy without TTA, with flip, with flip+zoom (macro-F1)."""
    values = [record["accuracy"], record["with_tta"]["accuracy"], record["with_flip_zoom"]["accuracy"]]
    return [f"{v:.4f}" for v in values + ([record["macro_f1"]] if with_macro else [])]


def table_row(text: str, start: str) -> list[str]:
    """The four-decimal numbers of the first table row of `text` that starts with `start` and shows
    some (the results table; a history table further down may name the model again)."""
    rows = [re.findall(r"\|\s*(\d\.\d{4})\s*(?=\|)", line) for line in text.splitlines() if line.startswith(start)]
    return next(row for row in rows if row)


@pytest.mark.parametrize("name", SHIPPED)
def test_readme_and_results_show_each_models_recorded_numbers(name):
    record = read_json(TRAINED / name / "metrics.json")
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert table_row(readme, f"| `{name}`") == numbers(record)
    results = (TRAINED / "RESULTS.md").read_text()
    assert table_row(results, f"| {name} |")[:4] == numbers(record, with_macro=True)


def test_readme_and_results_show_the_ensembles_recorded_numbers():
    record = read_json(TRAINED / "ensemble.json")
    members = "+".join(sorted(m["name"] for m in record["members"]))
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert table_row(readme, f"| ensemble of the {['', 'one', 'two', 'three', 'four'][len(record['members'])]}") == (
        numbers(record)
    )
    results = (TRAINED / "RESULTS.md").read_text()
    assert table_row(results, f"| ensemble {members} |")[:4] == numbers(record, with_macro=True)


def test_every_tool_is_in_docs_tools():
    listed = (PROJECT_ROOT / "docs" / "tools.md").read_text()
    tools = sorted(
        p.relative_to(PROJECT_ROOT).as_posix()
        for p in (PROJECT_ROOT / "tools").rglob("*")
        if p.suffix in (".py", ".sh") and "__pycache__" not in p.parts
    )
    missing = [tool for tool in tools if tool not in listed and tool.rsplit("/", 1)[-1] not in listed]
    assert missing == []


@pytest.mark.parametrize(
    "package", sorted(p.parent for p in (PROJECT_ROOT / "fer_core").glob("*/__init__.py")), ids=lambda p: p.name
)
def test_each_packages_docstring_names_its_modules(package):
    """A package's front door lists what is inside (fer_core's own map is docs/architecture.md)."""
    import ast

    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    modules = [p.stem for p in package.glob("*.py") if p.stem != "__init__"]
    modules += [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
    assert [m for m in sorted(modules) if m not in doc] == []
