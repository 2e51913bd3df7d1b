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
    code = "import sys\nimport fer_core.data, fer_core.stats, fer_core.cli\nprint('keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_a_bad_training_number_is_refused_before_keras_loads():
    """`fer-core train --epochs 0` answers in half a second, not after Keras' ten-second import."""
    code = (
        "import sys\n"
        "from fer_core.errors import FerError\n"
        "from fer_core.train_config import TrainConfig\n"
        "try:\n"
        "    TrainConfig(model='cnn', data='x', epochs=0)\n"
        "except FerError as error:\n"
        "    print(error)\n"
        "print('keras' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines() == ["epochs must be >= 1. Received: epochs=0", "False"], done.stderr
