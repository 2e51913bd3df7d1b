"""fer_core.onnx_graph: the registry's models written to ONNX compute what the Keras model does."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SMALL, model_params, raw_faces
from fer_core.models import build_model, list_models
from fer_core.inference.onnx_graph import UnsupportedLayer, keras_to_onnx

onnxruntime = pytest.importorskip("onnxruntime")


def trained_like(model):
    """Fresh weights everywhere, batch normalizations included (a new one is the identity, which
    would hide a wrong fold), with some scales negative and moving statistics far from 0 and 1."""
    rng = np.random.default_rng(11)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            for weight in layer.weights:
                shape, leaf = weight.shape, weight.path.rsplit("/", 1)[-1]
                values = {
                    "gamma": rng.uniform(-1.5, 1.5, shape),
                    "beta": rng.normal(0, 0.5, shape),
                    "moving_mean": rng.normal(0, 2, shape),
                    "moving_variance": rng.uniform(0.2, 4, shape),
                }[leaf]
                weight.assign(values.astype("float32"))
    return model


def run(onnx_model, x):
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", model_params(list_models()))
def test_each_registered_model_is_written_exactly(name):
    model = trained_like(build_model(name, num_classes=7, **SMALL[name]))
    x = raw_faces(6, seed=2)
    expected = np.asarray(model(x, training=False))
    written = run(keras_to_onnx(model), x)
    assert written.shape == expected.shape == (6, 7)
    assert np.abs(written - expected).max() < 1e-5
    kinds = [node.op_type for node in keras_to_onnx(model).graph.node]
    # Folded wherever a linear layer alone feeds it; the cnn normalizes after its convs' relu.
    assert ("BatchNormalization" in kinds) == (name == "cnn")


def test_the_gate_multiplies_after_pooling_and_batches_of_one_work():
    model = trained_like(build_model("attention_cnn", num_classes=7, **SMALL["attention_cnn"]))
    kinds = [node.op_type for node in keras_to_onnx(model).graph.node]
    # Two gated blocks pool before their gate's Mul; the third (no pooling) keeps its order.
    pooled_then_gated = sum(a == "MaxPool" and b == "Mul" for a, b in zip(kinds, kinds[1:]))
    assert pooled_then_gated == 2 and kinds.count("MaxPool") == 2
    x = raw_faces(1, seed=5)
    assert np.abs(run(keras_to_onnx(model), x) - np.asarray(model(x, training=False))).max() < 1e-5


def test_branches_are_written_and_a_shared_output_is_not_folded():
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    conv = keras.layers.Conv2D(4, 3, padding="same")(x)
    # Two readers of the conv: folding the normalization into it would change the other branch.
    normalized = keras.layers.BatchNormalization()(conv)
    joined = keras.layers.Add()([normalized, keras.layers.Conv2D(4, 1)(conv)])
    both = keras.layers.Concatenate()([joined, keras.layers.ZeroPadding2D(1)(conv)[:, 1:-1, 1:-1, :]])
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D(3, strides=2)(both))
    model = trained_like(keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled)))
    x = raw_faces(3, seed=8)
    with pytest.raises(UnsupportedLayer, match=r"\(GetItem\)"):
        keras_to_onnx(model)  # the slice is an operation this writer does not know
    both = keras.layers.Concatenate()([joined, conv])
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D(3, strides=2)(both))
    model = trained_like(keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(pooled)))
    written = keras_to_onnx(model)
    assert [node.op_type for node in written.graph.node].count("BatchNormalization") == 1
    assert np.abs(run(written, x) - np.asarray(model(x, training=False))).max() < 1e-5


def test_what_the_writer_does_not_know_is_refused():
    import keras

    strided = keras.Sequential(
        [keras.Input((48, 48, 1)), keras.layers.Conv2D(4, 3, strides=2, padding="same"), keras.layers.Flatten()]
    )
    with pytest.raises(UnsupportedLayer, match="'same' padding with strides"):
        keras_to_onnx(strided)  # keras pads these unevenly
    normalized = keras.Sequential(
        [keras.Input((48, 48, 1)), keras.layers.Normalization(mean=100.0, variance=400.0), keras.layers.Flatten()]
    )
    with pytest.raises(UnsupportedLayer, match="Normalization"):
        keras_to_onnx(normalized)


def test_the_comparison_tool_times_both_graphs_of_a_shipped_model():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "trained" / "cnn" / "model.keras").exists():
        pytest.skip("no shipped cnn")
    tool = [sys.executable, str(root / "tools" / "onnx_writers.py"), "--models", "cnn"]
    env = {**os.environ, "FER_TRAINED_DIR": str(root / "trained")}  # the tests' own folder is empty
    rows = subprocess.run([*tool, "--rounds", "1", "--calls", "3"], capture_output=True, text=True, check=True, env=env)
    cells = [line.split("|")[1:-1] for line in rows.stdout.splitlines() if line.startswith("| cnn")]
    assert len(cells) == 1 and cells[0][1].strip().endswith(")") and float(cells[0][3]) > 0  # both timed
    rates = subprocess.run([*tool, "--batches", "8"], capture_output=True, text=True, check=True, env=env)
    row = next(line for line in rates.stdout.splitlines() if line.startswith("| cnn | 8 |"))
    assert all(float(cell) > 0 for cell in row.split("|")[3:5])
