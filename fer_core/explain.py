"""Where a model looks: Grad-CAM for any model, and the spatial attention map of a family that
has one (attention_cnn). Which layers to read comes from the model's registry entry, looked up
from its saved config (`ModelRef.spec`), never from the Keras model's name.

Grad-CAM itself is `fer_core.inference.gradcam` (the live overlay uses it too), re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.backend import load_keras
from fer_core.errors import FerError
from fer_core.inference.gradcam import gradcam, gradcam_batch, gradcam_layer_for, last_spatial_layer, upsample_unit

__all__ = [
    "attention_map",
    "colour_key",
    "explain_face",
    "gradcam",
    "gradcam_batch",
    "gradcam_layer_for",
    "last_spatial_layer",
    "overlay",
]


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
    return upsample_unit(keras.ops.convert_to_numpy(maps)[0]), keras.ops.convert_to_numpy(probs)[0]


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
