"""fer_core's layers: it never imports streamlit (the dashboard depends on the core, never the
reverse), its imports point down the wing order of docs/architecture.md, FastAPI stays in the
service, and no import knots into a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "fer_core"


def test_no_streamlit_import_in_source():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("streamlit", "streamlit_webrtc")]
    assert offenders == []


@pytest.mark.slow  # imports every module, Keras and TensorFlow included, in a fresh process
def test_importing_every_module_loads_no_streamlit():
    modules = sorted(
        "fer_core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    )
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(any(m.startswith('streamlit') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_data_commands_do_not_import_keras():
    code = "import sys\nimport fer_core.data, fer_core.data.stats, fer_core.cli\nprint('keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_bad_training_number_is_refused_before_keras_loads():
    """`fer-core train --epochs 0` answers in half a second, not after Keras' ten-second import."""
    code = (
        "import sys\n"
        "from fer_core.errors import FerError\n"
        "from fer_core.training.config import TrainConfig\n"
        "try:\n"
        "    TrainConfig(model='cnn', data='x', epochs=0)\n"
        "except FerError as error:\n"
        "    print(error)\n"
        "print('keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines() == ["epochs must be >= 1. Received: epochs=0", "False"], done.stderr


def test_folds_that_cannot_be_made_are_refused_before_keras_loads(tmp_path):
    """`fer-core crossval --folds 100` on a small dataset answers before Keras' import: the
    config's model name is checked against the registry's names alone."""
    from helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path / "data", per_class=4)
    code = (
        "import sys\n"
        "from fer_core.errors import FerError\n"
        "from fer_core.training.config import TrainConfig\n"
        "from fer_core.training.crossval import crossval\n"
        "try:\n"
        f"    crossval(TrainConfig(model='cnn', data={str(root)!r}), 100, {str(tmp_path / 'cv')!r})\n"
        "except FerError as error:\n"
        "    print(error)\n"
        "print('keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert "cannot fill 100 folds" in lines[0] and lines[-1] == "False", done.stderr


def _internal_imports(core: Path = CORE) -> dict[str, set[str]]:
    """fer_core module -> the fer_core modules it imports, at module or function level."""
    modules = {
        ".".join(("fer_core", *p.relative_to(core).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in core.rglob("*.py")
    }
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                # A package's __init__ naming its own submodules is its face, not a cycle.
                if target and target != module and not (path.name == "__init__.py" and target.startswith(module + ".")):
                    edges[module].add(target)
    return edges


def test_fer_core_has_no_import_cycle():
    """Imports point one way (a module may reach another lazily, inside a function, only if that
    one never reaches back): a cycle is how a layered package starts to knot."""
    edges = _internal_imports()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


# The wing order (docs/architecture.md): a module imports its own wing and those before it,
# never one after it. Every top-level module or package of fer_core has its place here.
WINGS = [
    {"fer_core", "errors", "paths", "fileio", "words", "backend", "timing", "rundir"},  # base
    {"data", "models"},
    {"artifacts", "catalog"},  # saved models: their files, records and what they were measured on
    {"inference"},
    {"evaluation", "explain"},
    {"training"},
    {"recognizer", "export"},
    {"serve", "cli", "bench", "detection_bench", "batch", "__main__"},
]
# The package's face re-exports the facade (`from fer_core import Recognizer`, resolved lazily).
FACE = ("fer_core", "fer_core.recognizer")


def _wing(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    return next(rank for rank, wing in enumerate(WINGS) if part in wing)


def upward_imports(core: Path = CORE) -> list[str]:
    """Each import from a module to one of a later wing, as "a -> b"."""
    edges = _internal_imports(core)
    return sorted(
        f"{module} -> {target}"
        for module, targets in edges.items()
        for target in targets
        if (module, target) != FACE and _wing(target) > _wing(module)
    )


def test_every_module_has_a_wing():
    tops = {
        p.stem if p.is_file() else p.name for p in CORE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    }
    placed = set().union(*WINGS)
    assert tops - {"__init__"} <= placed, sorted(tops - {"__init__"} - placed)


def test_imports_point_down_the_wing_order():
    assert upward_imports() == []


def test_the_wing_check_catches_an_import_up(tmp_path):
    """The check above can fail: a built package whose inference imports training (at function
    level, where an import is easiest to miss) is caught."""
    core = tmp_path / "fer_core"
    for name, text in {
        "__init__.py": "",
        "errors.py": "",
        "inference/__init__.py": "def f():\n    from fer_core.training.loop import train\n",
        "training/__init__.py": "",
        "training/loop.py": "from fer_core.inference import f\n",
    }.items():
        (core / name).parent.mkdir(parents=True, exist_ok=True)
        (core / name).write_text(text)
    assert upward_imports(core) == ["fer_core.inference -> fer_core.training.loop"]


def test_fastapi_is_only_in_the_service():
    """The HTTP service's framework stays in `fer_core.serve`: the core and the CLI import none of it."""
    offenders = []
    for path in CORE.rglob("*.py"):
        if path.relative_to(CORE).parts[0] == "serve":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            offenders += [
                f"{path.relative_to(CORE)}: {n}" for n in names if n.split(".")[0] in ("fastapi", "starlette")
            ]
    assert offenders == []
