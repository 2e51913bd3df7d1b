"""Probabilities for faces, in input order, through the same fast classifier as the Predict and
Live pages."""

from __future__ import annotations

import numpy as np

from fer_core.inference import with_tta


def classifier_for(model):
    """The fast classifier users get on the Predict and Live pages (`fer_core.inference.Classifier`)
    for a loaded Keras model; a classifier, or any function from faces to probabilities, as is."""
    if hasattr(model, "layers"):  # a Keras model
        from fer_core.inference import Classifier

        return Classifier(model)
    return model


def _outputs(classify, classifier, empty: np.ndarray) -> int:
    """How many probabilities `classify` gives a face: a Keras model's (or a classifier's first
    model's) output width, else what it answers for no faces."""
    models = getattr(classify, "models", None) or [classify]
    shape = getattr(models[0], "output_shape", None)
    if shape:
        return int(shape[-1])
    answer = np.asarray(classifier(empty))
    return int(answer.shape[1]) if answer.ndim == 2 else 0


# Faces classified between two `progress` calls: a few tenths of a second on the 2-core CPU with
# flip+zoom TTA, so a page following it moves smoothly and can be cancelled at once.
PROGRESS_CHUNK = 256


def predict_probabilities(classify, images: np.ndarray, tta=False, progress=None) -> np.ndarray:
    """Class probabilities for (N, 48, 48) or (N, 48, 48, 1) raw uint8 faces, in input order, from
    `classify` (a Keras model or a classifier; see classifier_for).

    `tta`: one of `inference.TTA_MODES` (True = "flip"): the mean over those views of each face.
    `progress(done, total)`: called as the faces are classified, PROGRESS_CHUNK at a time (an
    exception it raises, such as a page's cancel, ends the prediction there).
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    classifier = with_tta(classifier_for(classify), tta)
    if len(x) == 0:  # no faces: none of the model's columns
        return np.zeros((0, _outputs(classify, classifier, x)), dtype=np.float32)
    if progress is None:
        return np.asarray(classifier(x), dtype=np.float32)
    parts = []
    for start in range(0, len(x), PROGRESS_CHUNK):
        progress(start, len(x))
        parts.append(np.asarray(classifier(x[start : start + PROGRESS_CHUNK]), dtype=np.float32))
    progress(len(x), len(x))
    return np.concatenate(parts)
