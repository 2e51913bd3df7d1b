"""tools/gpu/train_all.py, the GPU run's driver, run here on the CPU under JAX with tiny data, so it
is known to work before a GPU is ever lent; and its model, trained under JAX, evaluated under
TensorFlow as the promotion here does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fer_core.artifacts import PROJECT_ROOT


@pytest.mark.slow
def test_the_gpu_driver_trains_under_jax_and_the_model_evaluates_alike_under_tensorflow(folder_dataset, tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    out = tmp_path / "gpu-runs"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        sys.executable,
        str(PROJECT_ROOT / "tools" / "gpu" / "train_all.py"),
        "--data",
        str(folder_dataset),
        "--out",
        str(out),
        "--models",
        "cnn",
        # a budget the one tiny epoch cannot reach even with training sharing the CPU
        "--minutes",
        "4",
        "--epochs",
        "cnn=1",
        # to every `fer-core train`: a small model, float32 like a CPU without bf16
        "--param",
        "filters=[8,16,32]",
        "--param",
        "dense_units=16",
        "--batch-size",
        "8",
        "--precision",
        "float32",
        "--warmup-epochs",
        "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert json.loads((out / "best.json").read_text()) == {"cnn": "cnn"}
    run = out / "cnn"
    progress = json.loads((run / "progress.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert progress["backend"] == "jax" and progress["status"] == "finished" and progress["stop_reason"] == "epochs"
    assert config["minutes"] == pytest.approx(3.0) and config["lr_schedule"] == "cosine"

    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    under_jax = json.loads((run / "metrics.json").read_text())
    under_tf = evaluate([load_model(run)], load_dataset(folder_dataset), split=under_jax["split"]).metrics
    assert under_tf["n"] == under_jax["n"] == 42
    assert under_tf["loss"] == pytest.approx(under_jax["loss"], abs=1e-4)
    mismatched = np.abs(np.array(under_tf["confusion_matrix"]) - np.array(under_jax["confusion_matrix"])).sum() / 2
    assert mismatched <= 1  # float rounding may move one near-tie, no more
