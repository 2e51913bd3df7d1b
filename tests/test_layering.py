"""fer_core never imports streamlit: the dashboard depends on the core, never the reverse."""

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


def _internal_imports() -> dict[str, set[str]]:
    """fer_core module -> the fer_core modules it imports, at module or function level."""
    modules = {
        ".".join(("fer_core", *p.relative_to(CORE).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in CORE.rglob("*.py")
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
