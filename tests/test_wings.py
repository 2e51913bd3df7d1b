"""Imports point down the architecture's wings, never up (README's Architecture; DESIGN.md):
base -> data/models -> inference -> evaluation/explain -> training -> recognizer/export ->
batch/serve/cli/bench; FastAPI only under serve/. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "fer_core"
WINGS = [
    {"errors", "paths", "fileio", "backend", "rundir", "timing", "words"},
    {"data", "models", "artifacts"},  # artifacts: the saved-model store, beside models/
    {"inference"},
    {"evaluation", "explain", "catalog"},
    {"training"},
    {"recognizer", "export"},
    {"batch", "serve", "cli", "bench", "detection_bench", "__main__"},
]


def wing_of(module: str) -> int | None:
    """The wing of `fer_core.X...` (None for the package's front door, `fer_core` itself, which
    re-exports the facade and so may name any wing)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    return next((k for k, names in enumerate(WINGS) if parts[1] in names), -1)


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every fer_core import in fer_core."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [(module, alias.name, node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((module, node.module, node.lineno))
    return found


def test_every_module_has_a_wing():
    unplaced = {m for m, _n, _l in imports() if wing_of(m) == -1}
    assert unplaced == set(), "name the wing of each new top-level module in WINGS"


def test_no_import_points_up_the_wings():
    upward = [
        f"{module}:{line} imports {name}"
        for module, name, line in imports()
        if name.startswith("fer_core.")
        and wing_of(module) is not None
        and wing_of(name) is not None
        and wing_of(name) > wing_of(module)
    ]
    assert upward == []


@pytest.mark.parametrize("package", ["fastapi", "starlette", "uvicorn", "streamlit", "ray"])
def test_frameworks_stay_in_their_wing(package):
    allowed = {"fastapi": ("fer_core.serve", "fer_core.cli.serve_commands"), "ray": ("fer_core.batch",)}
    allowed["starlette"] = allowed["uvicorn"] = allowed["fastapi"]
    outside = [
        f"{module}:{line}"
        for module, name, line in imports()
        if name.split(".")[0] == package and not module.startswith(allowed.get(package, ("never",)))
    ]
    assert outside == []


def test_the_check_catches_an_upward_import():
    """The rule itself: a data module naming the facade would be refused."""
    assert wing_of("fer_core.recognizer") > wing_of("fer_core.data.dataset")
    assert wing_of("fer_core.explain") > wing_of("fer_core.inference.looks")
