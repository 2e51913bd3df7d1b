"""Grad-CAM (Selvaraju et al. 2017) for any model: one face or a batch, through a compiled
gradient pass. Here, below `fer_core.explain`, so the live and video overlays
(`inference.looks`) use it without importing upward; `fer_core.explain` re-exports it.

Grad-CAM needs gradients, which each Keras backend computes its own way; that difference is kept
inside `_gradients`, the one backend-specific function here.
"""

from __future__ import annotations

import functools

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.backend import load_keras
from fer_core.errors import FerError


@functools.lru_cache(maxsize=8)  # Live and Video ask for the same model's maps many times a second
def _feature_model(model, layer_name: str):
    keras = load_keras()
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        raise FerError(f"the model has no layer {layer_name!r} for Grad-CAM") from None
    output = layer.output[0] if isinstance(layer.output, (list, tuple)) else layer.output
    return keras.Model(model.inputs, [output, model.outputs[0]])


def last_spatial_layer(model) -> str:
    """The last layer with a 4-D output: Grad-CAM's layer for a model the registry does not know."""
    for layer in reversed(model.layers):
        shape = layer.output.shape if not isinstance(layer.output, (list, tuple)) else layer.output[0].shape
        if len(shape) == 4:
            return layer.name
    raise FerError(f"model {model.name!r} has no spatial layer for Grad-CAM")


def gradcam_layer_for(model) -> str:
    """Grad-CAM's layer for a loaded model: its registry family's (the one whose layer it has),
    else its last spatial layer."""
    from fer_core.models import get_spec, list_models

    names = {layer.name for layer in model.layers}
    for family in list_models():
        layer = get_spec(family).gradcam_layer
        if layer in names:
            return layer
    return last_spatial_layer(model)


def gradcam(
    model, face: np.ndarray, class_index: int | None = None, layer_name: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM (Selvaraju et al. 2017) of one 48x48 face.

    Args:
        model: a loaded model.
        face: (48, 48) uint8.
        class_index: the class to explain; default the predicted one.
        layer_name: default the last spatial layer (`explain_face` passes the registry's).

    Returns:
        (heatmap (48, 48) float32 in [0, 1], probabilities (7,)).
    """
    heats, probabilities = gradcam_batch(
        model, np.asarray(face)[None], None if class_index is None else [class_index], layer_name
    )
    return heats[0], probabilities[0]


def gradcam_batch(model, faces: np.ndarray, class_indices=None, layer_name: str | None = None):
    """Grad-CAM of several 48x48 faces in one pass (Live's and Video's maps): (heatmaps (N, 48,
    48) in [0, 1], probabilities (N, classes)); `class_indices` default each face's predicted class."""
    layer_name = layer_name or last_spatial_layer(model)
    feature_model = _feature_model(model, layer_name)
    x = np.asarray(faces, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    indices = np.full(len(x), -1, np.int32) if class_indices is None else np.asarray(class_indices, np.int32)
    features, grads, probs = _gradients(feature_model, x, indices)
    weights = grads.mean(axis=(1, 2))  # global-average-pooled gradients per face and channel
    cams = np.maximum((features * weights[:, None, None, :]).sum(axis=-1), 0)
    return np.stack([upsample_unit(cam) for cam in cams]), probs


def _gradients(feature_model, x: np.ndarray, indices: np.ndarray):
    """(features (N, h, w, c), d score / d features (N, h, w, c), probabilities (N, classes)) on
    this backend; each face's score is its class `indices[i]` (-1: its predicted class). The faces
    are independent in inference (no batch statistics), so one gradient of the scores' sum gives
    each face's own."""
    keras = load_keras()
    backend = keras.backend.backend()
    if backend == "tensorflow":
        features, grads, probs = _compiled_gradients(feature_model)(x, indices)
        return features.numpy(), grads.numpy(), probs.numpy()
    if backend == "torch":
        import torch

        features, probs = feature_model(torch.from_numpy(x), training=False)
        chosen = torch.where(
            torch.from_numpy(indices) < 0, torch.argmax(probs, dim=1), torch.from_numpy(indices).long()
        )
        score = probs.gather(1, chosen[:, None]).sum()
        (grads,) = torch.autograd.grad(score, features)
        return features.detach().cpu().numpy(), grads.cpu().numpy(), probs.detach().cpu().numpy()
    # jax would need the graph split at the feature layer; not done yet.
    raise FerError(f"Grad-CAM is not supported on the {backend} backend")


@functools.lru_cache(maxsize=8)
def _compiled_gradients(feature_model):
    """The TensorFlow gradient pass as one compiled function (traced once for any batch size):
    eagerly, vgg_fer's pass took 110 ms a face on the 2-core machine, compiled 10 (21 for three)."""
    import tensorflow as tf

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ],
        reduce_retracing=True,
    )
    def run(x, indices):
        with tf.GradientTape() as tape:
            features, probs = feature_model(x, training=False)
            predicted = tf.argmax(probs, axis=1, output_type=tf.int32)
            chosen = tf.where(indices < 0, predicted, indices)
            score = tf.reduce_sum(tf.gather(probs, chosen, batch_dims=1))
        return features, tape.gradient(score, features), probs

    return run


def upsample_unit(heat: np.ndarray) -> np.ndarray:
    """A map at the face's 48x48, scaled to [0, 1]."""
    import cv2

    heat = np.asarray(heat, dtype=np.float32)
    heat = cv2.resize(heat, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    heat -= heat.min()
    top = heat.max()
    return heat / top if top > 0 else heat
