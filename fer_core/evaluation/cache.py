"""A saved model's probabilities on a set of images, kept on disk by content for the next caller."""

from __future__ import annotations

import numpy as np

from fer_core.evaluation.predict import predict_probabilities
from fer_core.inference import tta_mode


def cached_probabilities(
    model_file, images: np.ndarray, labels: np.ndarray, tta=False, load=None, progress=None
) -> np.ndarray:
    """`predict_probabilities` of a saved model on these images, kept on disk under
    FER_CACHE_DIR/probabilities for the next caller (the Evaluate page, `fer-core evaluate`, a
    distillation run's teachers). The key is the content of the model file and of the images and
    labels (so a promoted or retrained model, or other data, is never answered from an old entry),
    plus the TTA setting, Keras backend and version, which can move the last float digits. A
    missing, unreadable or malformed entry is computed again. `progress`: see `predict_probabilities`
    (not called for an entry found)."""
    import hashlib
    import os

    from fer_core.backend import load_keras
    from fer_core.paths import cache_dir
    from fer_core.fileio import file_sha256, write_atomic

    keras = load_keras()
    # v2: probabilities from the fast classifier (v1 came from model.predict). No TTA and flip keep
    # the keys they had when TTA was a bool, so entries computed then are still found.
    mode = tta_mode(tta)
    tta_key = {"none": "False", "flip": "True"}.get(mode, mode)
    digest = hashlib.sha256(f"v2|{keras.backend.backend()}|{keras.__version__}|{tta_key}|".encode())
    digest.update(file_sha256(model_file).encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.asarray(labels, dtype=np.int64).tobytes())
    path = cache_dir() / "probabilities" / f"{digest.hexdigest()}.npy"
    probabilities = read_cached_probabilities(path, len(images))
    if probabilities is None:
        if load is None:
            from fer_core.artifacts import load_model as load
        probabilities = predict_probabilities(load(model_file), images, tta=tta, progress=progress)
        try:
            os.makedirs(path.parent, exist_ok=True)
            write_atomic(path, lambda tmp: np.save(tmp, probabilities, allow_pickle=False))
        except OSError:
            pass  # a read-only or full cache disk costs the next visit time, not this one its result
    return probabilities


def read_cached_probabilities(path, rows: int) -> np.ndarray | None:
    try:
        probabilities = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if probabilities.dtype != np.float32 or probabilities.ndim != 2 or probabilities.shape[0] != rows:
        return None
    if not np.isfinite(probabilities).all():
        return None
    return probabilities
