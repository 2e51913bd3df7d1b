"""Where a model looks: Grad-CAM for any model, and the spatial attention map of a family that
has one (attention_cnn). Which layers to read comes from the model's registry entry, looked up
from its saved config (`ModelRef.spec`), never from the Keras model's name.

Grad-CAM needs gradients, which each Keras backend computes its own way; that difference is kept
inside `_gradients`, the one backend-specific function here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
    return np.stack([_upsample_unit(cam) for cam in cams]), probs


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


def attention_map(model, face: np.ndarray, layer_name: str = "spatial_attention") -> tuple[np.ndarray, np.ndarray]:
    """The spatial softmax attention (§4.1) of one face, read from `layer_name` (a layer whose
    second output is the map), upsampled to 48x48 in [0, 1].

    Returns:
        (heatmap (48, 48) float32, probabilities (7,)).

    Raises:
        FerError: the model has no such attention layer.
    """
    from fer_core.models.attention_cnn import attention_map_model

    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        layer = None
    if layer is None or not isinstance(layer.output, (list, tuple)):
        raise FerError(f"model {model.name!r} has no attention layer {layer_name!r}; attention maps need attention_cnn")
    x = np.asarray(face, dtype=np.float32).reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1)
    probs, maps = attention_map_model(model, layer_name)(x, training=False)
    keras = load_keras()
    return _upsample_unit(keras.ops.convert_to_numpy(maps)[0]), keras.ops.convert_to_numpy(probs)[0]


@dataclass(frozen=True)
class Explanation:
    """What the Explain page shows for one model and face."""

    gradcam: np.ndarray  # (48, 48) in [0, 1]
    attention: np.ndarray | None  # (48, 48) in [0, 1], for families with an attention layer
    probabilities: np.ndarray  # one per class of the model
    classes: tuple[str, ...]  # the model's class names

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]


def explain_face(model, face: np.ndarray, spec=None, classes=None) -> Explanation:
    """Grad-CAM at the family's layer (`spec`, a registry entry such as `ModelRef.spec`; else the
    last spatial layer) and, where the family has one, its attention map; `classes` names the
    model's outputs (when not given: FER2013's for seven outputs, else refused; `unrecorded_classes`)."""
    from fer_core.artifacts import unrecorded_classes

    if classes is None:
        classes = unrecorded_classes(int(model.outputs[0].shape[-1]), model.name)
    heat, probabilities = gradcam(model, face, layer_name=spec.gradcam_layer if spec else None)
    attention = None
    if spec is not None and spec.attention_layer:
        attention, _ = attention_map(model, face, spec.attention_layer)
    return Explanation(heat, attention, probabilities, tuple(classes))


def _upsample_unit(heat: np.ndarray) -> np.ndarray:
    import cv2

    heat = np.asarray(heat, dtype=np.float32)
    heat = cv2.resize(heat, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    heat -= heat.min()
    top = heat.max()
    return heat / top if top > 0 else heat


def overlay(face: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5, size: int = 192) -> np.ndarray:
    """The face with a jet-coloured heatmap blended over it, as an RGB uint8 image of side `size`."""
    import cv2

    if not 0 <= opacity <= 1:
        raise FerError(f"opacity must be in [0, 1]. Received: {opacity}")
    gray = cv2.resize(np.asarray(face, dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(np.asarray(heatmap, dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    coloured = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    blended = cv2.addWeighted(coloured, opacity, base, 1 - opacity, 0)
    return cv2.cvtColor(blended, cv2.COLOR_BGR2RGB)


def colour_key(width: int = 192, height: int = 12) -> np.ndarray:
    """The heatmaps' colours from least weight (left, blue) to most (right, red), as an RGB
    strip: the key beside `overlay`'s images."""
    import cv2

    ramp = np.tile(np.linspace(0, 255, width, dtype=np.float32).astype(np.uint8), (height, 1))
    return cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
