"""Probabilities for faces, in input order, through the same fast classifier as the Predict and
Live pages."""

from __future__ import annotations

import numpy as np

from fer_core import CLASS_NAMES
from fer_core.inference import with_tta


def classifier_for(model):
    """The fast classifier users get on the Predict and Live pages (`fer_core.inference.Classifier`)
    for a loaded Keras model; a classifier, or any function from faces to probabilities, as is."""
    if hasattr(model, "layers"):  # a Keras model
        from fer_core.inference import Classifier

        return Classifier(model)
    return model


def predict_probabilities(classify, images: np.ndarray, tta=False) -> np.ndarray:
    """Class probabilities for (N, 48, 48) or (N, 48, 48, 1) raw uint8 faces, in input order, from
    `classify` (a Keras model or a classifier; see classifier_for).

    `tta`: one of `inference.TTA_MODES` (True = "flip"): the mean over those views of each face.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if len(x) == 0:
        return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
    return np.asarray(with_tta(classifier_for(classify), tta)(x), dtype=np.float32)
