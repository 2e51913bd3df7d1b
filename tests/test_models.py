"""Every registered model: builds, takes raw pixels, trains a batch, round-trips with safe_mode."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core import FerError
from fer_core.models import build_model, get_spec, list_models
from helpers import SMALL, model_params, raw_faces


def test_registry_lists_the_papers_models():
    assert list_models()[:3] == ["cnn", "attention_cnn", "resnet50"]


def test_unknown_model_is_refused_with_valid_names():
    with pytest.raises(FerError, match="valid models: cnn, attention_cnn, resnet50"):
        build_model("vgg", num_classes=7)


def test_bad_hyperparameter_is_refused():
    with pytest.raises(FerError, match="does not accept"):
        build_model("cnn", num_classes=7, depth=3)


@pytest.mark.parametrize("name", model_params(list_models()))
@pytest.mark.trains
def test_builds_trains_and_round_trips(name, tmp_path):
    import keras

    model = build_model(name, num_classes=7, **SMALL[name])
    assert tuple(model.inputs[0].shape[1:]) == (48, 48, 1)
    x = raw_faces()
    probs = np.asarray(model(x, training=False))
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Grad-CAM's layer exists and is spatial.
    assert len(model.get_layer(get_spec(name).gradcam_layer).output.shape) == 4

    model.compile(optimizer="adam", loss="categorical_crossentropy")
    y = keras.utils.to_categorical([0, 1, 2, 3], 7)
    before = [np.array(w) for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.allclose(b, np.array(w)) for b, w in zip(before, model.trainable_weights))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    from fer_core.artifacts import load_model

    loaded = load_model(path)  # safe_mode=True
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), atol=1e-5)


def test_paper_cnn_architecture():
    model = build_model("cnn", num_classes=7)
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 128, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" and c.activation.__name__ == "relu" for c in convs)
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer",
        "Rescaling",
        *["Conv2D", "BatchNormalization", "MaxPooling2D", "Dropout"] * 3,
        "Flatten",
        "Dense",
        "BatchNormalization",
        "Dropout",
        "Dense",
    ]
    assert all(layer.rate == 0.25 for layer in model.layers if layer.__class__.__name__ == "Dropout")
    assert model.get_layer("dense").units == 256
    assert model.get_layer("probabilities").units == 7


def test_attention_maps_are_softmax_over_positions():
    from fer_core.models.attention_cnn import attention_map_model

    model = build_model("attention_cnn", num_classes=7, **SMALL["attention_cnn"])
    probs, maps = attention_map_model(model)(raw_faces(2), training=False)
    maps = np.asarray(maps)
    assert maps.shape == (2, 12, 12)
    # The channel mean of per-channel softmaxes over positions sums to 1 over positions.
    np.testing.assert_allclose(maps.reshape(2, -1).sum(axis=1), 1.0, atol=1e-4)
    assert (maps >= 0).all()
    np.testing.assert_allclose(np.asarray(probs), np.asarray(model(raw_faces(2), training=False)), atol=1e-5)


def test_resnet50_imagenet_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # fer_core reads KERAS_HOME when asked for the weights, so the empty folder is what it searches.
    with pytest.raises(FerError, match="not available offline") as error:
        build_model("resnet50", num_classes=7, image_size=32, weights="imagenet")
    assert str(tmp_path) in str(error.value)
    with pytest.raises(FerError, match="weights file not found"):
        build_model("resnet50", num_classes=7, image_size=32, weights=str(tmp_path / "missing.h5"))


@pytest.mark.parametrize("name", model_params(list_models()))
def test_compacted_model_stores_float16_and_predicts_the_same(name, tmp_path):
    import io
    import zipfile

    import h5py

    from fer_core.artifacts import compact_model_file, load_model

    model = build_model(name, num_classes=7, **SMALL[name])
    source = tmp_path / "model.keras"
    model.save(source)
    compact = tmp_path / "compact.keras"
    report = compact_model_file(source, compact)

    with zipfile.ZipFile(compact) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        dtypes = set()
        weights.visititems(lambda _name, item: dtypes.add(str(item.dtype)) if isinstance(item, h5py.Dataset) else None)
    assert "float16" in dtypes and "float32" not in dtypes
    x = raw_faces(8, seed=1)
    expected = np.asarray(model(x, training=False))
    got = np.asarray(load_model(compact)(x, training=False))
    assert [str(w.dtype) for w in load_model(compact).weights] == [str(w.dtype) for w in model.weights]
    # An untrained 50-layer ResNet (default BN statistics) amplifies float16 rounding; the
    # trained one moved probabilities by 1e-3 at most (tools/gpu run, README).
    tolerance = 0.2 if name == "resnet50" else 5e-3
    np.testing.assert_allclose(got, expected, atol=tolerance)
    assert report["max_abs_difference"] < tolerance
    assert report["bytes_after"] < report["bytes_before"]


def test_compacting_halves_a_full_size_model(tmp_path):
    from fer_core.artifacts import compact_model_file

    source = tmp_path / "model.keras"
    build_model("cnn", num_classes=7).save(source)
    report = compact_model_file(source)  # in place
    assert report["bytes_after"] < 0.55 * report["bytes_before"]
    assert source.stat().st_size == report["bytes_after"]
    assert not list(tmp_path.glob(".*tmp*")), "no temp file left behind"


@pytest.mark.slow  # trains a step under JAX in a fresh process
def test_training_step_is_one_jitted_program_on_jax():
    """Keras turns jit off for a model holding RandomRotation/Zoom/Translation (TensorFlow's XLA
    cannot compile them); on JAX that ran every op eagerly, 170 s an epoch on an H100."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:  # not imported here: jaxlib beside TensorFlow in one process
        pytest.skip("jax is not installed")

    script = """
import numpy as np
from fer_core.training.recipe import build_training_model
from fer_core.training.config import TrainConfig
config = TrainConfig(model="cnn", model_params={"filters": [8, 16, 32], "dense_units": 16}, shift=0.1, erasing=0.25)
training_model, _ = build_training_model(config)
augmentation = [layer.name for layer in training_model.layers if layer.name.startswith("aug_")]
assert len(augmentation) == 5, augmentation
x = np.random.default_rng(0).integers(0, 256, (32, 48, 48, 1)).astype("uint8")
y = np.eye(7, dtype="float32")[np.arange(32) % 7]
history = training_model.fit(x, y, batch_size=16, epochs=1, verbose=0)
print("jit", training_model.jit_compile, "loss", history.history["loss"][-1])
"""
    import os

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("jit True loss "), line
    assert np.isfinite(float(line.split()[-1]))


def test_a_model_trained_in_mixed_bfloat16_is_stored_to_compute_in_float32(tmp_path):
    """bf16 compute is ~5x slower on CPUs without bf16 instructions: shipped files compute in float32."""
    from keras import mixed_precision

    from fer_core.artifacts import compact_model_file, load_model

    mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("cnn", num_classes=7, **SMALL["cnn"])
    finally:
        mixed_precision.set_global_policy("float32")
    assert {layer.dtype_policy.name for layer in model.layers if layer.weights} >= {"mixed_bfloat16"}
    source = tmp_path / "model.keras"
    model.save(source)
    compact_model_file(source)
    stored = load_model(source)
    assert {layer.dtype_policy.name for layer in stored.layers} == {"float32"}
    x = raw_faces(8, seed=2)
    # bf16 compute vs float32 compute of the same (float16-rounded) weights: close, not equal.
    np.testing.assert_allclose(np.asarray(stored(x)), np.asarray(model(x)), atol=0.05)


def test_every_registered_model_has_a_small_build_for_the_suite():
    """A new model without an entry in helpers.SMALL would run full-size in every parametrized test."""
    from helpers import SMALL

    assert set(SMALL) == set(list_models())
