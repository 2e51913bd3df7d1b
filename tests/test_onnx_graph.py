"""fer_core.onnx_graph: the registry's chain models written to ONNX compute what the Keras model does."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import SMALL, raw_faces
from fer_core.models import build_model, list_models
from fer_core.onnx_graph import UnsupportedLayer, chain_to_onnx

onnxruntime = pytest.importorskip("onnxruntime")

CHAINS = [name for name in list_models() if name != "resnet50"]  # ResNet50 branches: tf2onnx's job


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


@pytest.mark.parametrize("name", CHAINS)
def test_each_chain_model_is_written_exactly(name):
    model = trained_like(build_model(name, **SMALL.get(name, {})))
    x = raw_faces(6, seed=2)
    expected = np.asarray(model(x, training=False))
    written = run(chain_to_onnx(model), x)
    assert written.shape == expected.shape == (6, 7)
    assert np.abs(written - expected).max() < 1e-5
    kinds = [node.op_type for node in chain_to_onnx(model).graph.node]
    assert "BatchNormalization" not in kinds or name == "cnn"  # folded where a linear layer precedes it


def test_the_gate_multiplies_after_pooling_and_batches_of_one_work():
    model = trained_like(build_model("attention_cnn", **SMALL["attention_cnn"]))
    kinds = [node.op_type for node in chain_to_onnx(model).graph.node]
    # Two gated blocks pool before their gate's Mul; the third (no pooling) keeps its order.
    pooled_then_gated = sum(a == "MaxPool" and b == "Mul" for a, b in zip(kinds, kinds[1:]))
    assert pooled_then_gated == 2 and kinds.count("MaxPool") == 2
    x = raw_faces(1, seed=5)
    assert np.abs(run(chain_to_onnx(model), x) - np.asarray(model(x, training=False))).max() < 1e-5


def test_a_model_that_is_not_a_chain_is_refused():
    import keras

    inputs = keras.Input((48, 48, 1))
    branch = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    joined = keras.layers.Add()([branch, keras.layers.Conv2D(4, 1)(inputs)])
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.GlobalAveragePooling2D()(joined))
    with pytest.raises(UnsupportedLayer, match="not fed by the layer before it"):
        chain_to_onnx(keras.Model(inputs, outputs))
    strided = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Conv2D(4, 3, strides=2), keras.layers.Flatten()])
    with pytest.raises(UnsupportedLayer, match="strides"):
        chain_to_onnx(strided)
