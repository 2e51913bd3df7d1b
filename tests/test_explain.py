"""Grad-CAM for every registered model; the attention_cnn's attention map; overlays."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core import FerError
from fer_core.explain import attention_map, explain_face, gradcam, overlay
from fer_core.models import build_model, get_spec, list_models
from helpers import SMALL, model_params


@pytest.mark.parametrize("name", model_params(list_models()))
def test_gradcam_every_model(name):
    model = build_model(name, num_classes=7, **SMALL[name])
    face = np.random.default_rng(1).integers(0, 256, (48, 48)).astype(np.uint8)
    heat, probs = gradcam(model, face)
    assert heat.shape == (48, 48) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert probs.shape == (7,) and probs.sum() == pytest.approx(1.0, abs=1e-4)
    heat_other, _ = gradcam(model, face, class_index=int(np.argmin(probs)))
    assert heat_other.shape == (48, 48)
    # At the registry's layer, with the attention map exactly where the family has an attention layer.
    explained = explain_face(model, face, get_spec(name))
    np.testing.assert_allclose(explained.probabilities, probs, atol=1e-5)
    assert (explained.attention is not None) == bool(get_spec(name).attention_layer)


def test_a_batch_of_faces_gets_each_faces_own_gradcam():
    """Live's and Video's maps come in one pass for every face waiting: each the map that face
    alone gets, for its own predicted class or the class asked."""
    from fer_core.artifacts import load_model
    from fer_core.explain import gradcam_batch
    from fer_core.paths import PROJECT_ROOT
    from helpers import synthetic_face

    model = load_model(PROJECT_ROOT / "trained" / "vgg_fer")
    faces = np.stack([synthetic_face(label, 2) for label in (0, 3, 6)])
    heats, probs = gradcam_batch(model, faces)
    for face, heat, prob in zip(faces, heats, probs):
        alone, alone_probs = gradcam(model, face)
        np.testing.assert_allclose(heat, alone, atol=1e-4)
        np.testing.assert_allclose(prob, alone_probs, atol=1e-5)
    asked, _ = gradcam_batch(model, faces, class_indices=[1, 1, 1])
    np.testing.assert_allclose(asked[2], gradcam(model, faces[2], class_index=1)[0], atol=1e-4)
    assert np.abs(heats - asked).max() > 0.05  # another class, another map


def test_attention_map_only_for_attention_models():
    face = np.full((48, 48), 120, np.uint8)
    heat, probs = attention_map(build_model("attention_cnn", num_classes=7, **SMALL["attention_cnn"]), face)
    assert heat.shape == (48, 48) and probs.shape == (7,)
    with pytest.raises(FerError, match="no attention layer"):
        attention_map(build_model("cnn", num_classes=7, **SMALL["cnn"]), face)


def test_overlay_is_rgb_and_opacity_zero_is_the_face():
    face = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    heat = np.random.default_rng(0).random((48, 48)).astype(np.float32)
    image = overlay(face, heat, 0.0, size=48)
    assert image.shape == (48, 48, 3)
    np.testing.assert_array_equal(image[..., 0], face)
    assert not np.array_equal(overlay(face, heat, 0.8, size=48)[..., 0], face)
    with pytest.raises(FerError):
        overlay(face, heat, 1.5)
