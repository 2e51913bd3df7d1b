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

from fer_core.paths import PROJECT_ROOT


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
    # --devices all: every device JAX sees, here the one CPU
    assert config["devices"] == 1 and config["layout"] == {"backend": "jax", "devices": 1, "device_kind": "cpu"}

    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    under_jax = json.loads((run / "metrics.json").read_text())
    under_tf = evaluate([load_model(run)], load_dataset(folder_dataset), split=under_jax["split"]).metrics
    assert under_tf["n"] == under_jax["n"] == 42
    assert under_tf["loss"] == pytest.approx(under_jax["loss"], abs=1e-4)
    mismatched = np.abs(np.array(under_tf["confusion_matrix"]) - np.array(under_jax["confusion_matrix"])).sum() / 2
    assert mismatched <= 1  # float rounding may move one near-tie, no more


def test_every_gpu_recipe_is_a_valid_training_config(monkeypatch):
    """A recipe with a misspelt flag or value would fail only on the GPU machine, minutes into a lent
    device's time; here each becomes a TrainConfig as `fer-core train` makes it (teachers resolved
    against the shipped models, which travel with the working tree) and each distinct model builds, from
    its recipe's own warm start where it has one."""
    from fer_core.cli import build_parser, train_config_from_args
    from fer_core.models import build_model
    from fer_core.training.recipe import build_training_model

    spec = importlib.util.spec_from_file_location("train_all", PROJECT_ROOT / "tools" / "gpu" / "train_all.py")
    train_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_all)
    monkeypatch.setenv("FER_TRAINED_DIR", str(PROJECT_ROOT / "trained"))
    built = set()
    for name, (model, epochs, flags) in train_all.RECIPES.items():
        args = build_parser().parse_args(["train", "--model", model, "--data", "DATA", "--epochs", str(epochs), *flags])
        config = train_config_from_args(args)
        assert config.model == model and config.epochs == epochs, name
        key = (model, json.dumps(config.model_params, sort_keys=True), json.dumps(config.init_from))
        if key not in built:  # the model parameters must build (each distinct model once: seconds)
            built.add(key)
            if config.init_from:  # and a recipe's own warm start must load (narrowing, for the smaller ones)
                assert build_training_model(config)[1].count_params() > 0, name
            else:
                assert build_model(model, num_classes=7, **config.model_params).count_params() > 0, name
        assert train_all.SLOTS.get(name, model).startswith(model), name  # a slot is one registry model's
        if "--teacher" in flags:
            assert [t["model"] for t in config.distill_from["teachers"]] == ["cnn", "attention_cnn", "vgg_fer"], name
