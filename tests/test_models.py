"""Every registered model: builds, takes raw pixels, trains a batch, round-trips with safe_mode."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core import FerError
from fer_core.models import build_model, get_spec, list_models

# Small widths keep the suite fast; the architecture (layers, names, wiring) is the registry's.
SMALL = {
    "cnn": {"filters": (8, 16, 32), "dense_units": 16},
    "attention_cnn": {"filters": (8, 16, 32), "dense_units": 16},
    "resnet50": {"image_size": 32},
}


def raw_faces(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype("float32")


def test_registry_lists_the_papers_models():
    assert list_models()[:3] == ["cnn", "attention_cnn", "resnet50"]


def test_unknown_model_is_refused_with_valid_names():
    with pytest.raises(FerError, match="valid models: cnn, attention_cnn, resnet50"):
        build_model("vgg")


def test_bad_hyperparameter_is_refused():
    with pytest.raises(FerError, match="does not accept"):
        build_model("cnn", depth=3)


@pytest.mark.parametrize("name", list_models())
def test_builds_trains_and_round_trips(name, tmp_path):
    import keras

    model = build_model(name, **SMALL.get(name, {}))
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
    model = build_model("cnn")
    convs = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 128, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" and c.activation.__name__ == "relu" for c in convs)
    kinds = [l.__class__.__name__ for l in model.layers]
    assert kinds == [
        "InputLayer", "Rescaling",
        *["Conv2D", "BatchNormalization", "MaxPooling2D", "Dropout"] * 3,
        "Flatten", "Dense", "BatchNormalization", "Dropout", "Dense",
    ]
    assert all(l.rate == 0.25 for l in model.layers if l.__class__.__name__ == "Dropout")
    assert model.get_layer("dense").units == 256
    assert model.get_layer("probabilities").units == 7


def test_attention_maps_are_softmax_over_positions():
    from fer_core.models.attention_cnn import attention_map_model

    model = build_model("attention_cnn", **SMALL["attention_cnn"])
    probs, maps = attention_map_model(model)(raw_faces(2), training=False)
    maps = np.asarray(maps)
    assert maps.shape == (2, 12, 12)
    # The channel mean of per-channel softmaxes over positions sums to 1 over positions.
    np.testing.assert_allclose(maps.reshape(2, -1).sum(axis=1), 1.0, atol=1e-4)
    assert (maps >= 0).all()
    np.testing.assert_allclose(np.asarray(probs), np.asarray(model(raw_faces(2), training=False)), atol=1e-5)


def test_resnet50_imagenet_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FerError, match="not available offline|not found"):
        build_model("resnet50", image_size=32, weights="imagenet")
    with pytest.raises(FerError, match="weights file not found"):
        build_model("resnet50", image_size=32, weights=str(tmp_path / "missing.h5"))
