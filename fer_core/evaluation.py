"""The one evaluation routine: metrics, confusion matrices, flip TTA and ensembles.

Predictions are always made in the dataset's fixed order and compared with labels in that same
order; the paper's chance-level per-class tables are what a shuffled evaluation order produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_core import CLASS_NAMES
from fer_core.data import Dataset, default_evaluation_split, default_training_split
from fer_core.errors import FerError
from fer_core.inference import tta_mode, with_tta

CALIBRATION_BINS = 10


def selection_warning(name: str, metrics: dict, dataset: Dataset, split: str | None) -> str | None:
    """Why an accuracy on `split` would be optimistic for this model, or None: the split trained it,
    or it picked the model's best epoch (as recorded in the model's metrics.json)."""
    if split is not None and split == default_training_split(dataset):
        return (
            f"{name} was trained on {split} (its best epoch picked on a slice of it): accuracy here says "
            f"little about new faces; evaluate on {default_evaluation_split(dataset) or 'a held-out split'}"
        )
    selected_on = metrics.get("selection_split")
    if split is not None and split == selected_on:
        return (
            f"{split} picked {name}'s best epoch, so its accuracy there is optimistic; "
            f"the honest figure is on {metrics.get('split', 'the reported split')}"
        )
    return None


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


@dataclass
class Evaluation:
    """Metrics plus the arrays they came from (same order as the evaluated split)."""

    metrics: dict
    probabilities: np.ndarray
    labels: np.ndarray
    sources: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Accuracy, macro/weighted F1, loss, per-class P/R/F1/support, confusion matrices, calibration."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        raise FerError("nothing to evaluate: the split holds no images")
    if probabilities.shape != (len(labels), len(CLASS_NAMES)):
        raise FerError(f"probabilities have shape {probabilities.shape}, expected ({len(labels)}, {len(CLASS_NAMES)})")
    class_ids = list(range(len(CLASS_NAMES)))
    predictions = probabilities.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=class_ids, zero_division=0
    )
    matrix = confusion_matrix(labels, predictions, labels=class_ids)
    row_totals = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, row_totals, out=np.zeros_like(matrix, dtype=np.float64), where=row_totals > 0)
    present = support > 0  # F1 averages over the classes the split holds
    weights = support / support.sum()
    true_probability = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float((f1 * weights).sum()),
        "loss": float(-np.log(true_probability).mean()),
        "n": int(len(labels)),
        "classes": list(CLASS_NAMES),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(CLASS_NAMES)
        },
        "confusion_matrix": matrix.astype(int).tolist(),
        "confusion_matrix_normalized": normalized.round(6).tolist(),
        "calibration": calibration(labels, probabilities),
    }


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability diagram data (confidence bins) and the expected calibration error."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        in_bin = which == b
        count = int(in_bin.sum())
        mean_conf = float(confidence[in_bin].mean()) if count else None
        accuracy = float(correct[in_bin].mean()) if count else None
        if count:
            ece += count / len(labels) * abs(accuracy - mean_conf)
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "confidence": mean_conf,
                "accuracy": accuracy,
            }
        )
    return {"ece": float(ece), "bins": rows}


def evaluate(
    models: list,
    dataset: Dataset,
    split: str | None = None,
    tta=False,
    names: list[str] | None = None,
) -> Evaluation:
    """Evaluate one model, or the ensemble (mean probabilities) of several, on one split, through
    the same fast classifier as predictions (so `fer-core bench`'s throughput is evaluation's).

    Args:
        models: loaded Keras models (or classifiers); more than one means their ensemble.
        dataset: the loaded dataset.
        split: a split name; None picks PrivateTest, else PublicTest, else test, else all images.
        tta: one of `inference.TTA_MODES` (True = "flip"): average each face over those views.
        names: how to name the models in the metrics.

    Returns:
        An `Evaluation` whose `metrics` is what `fer-core evaluate --json` prints.
    """
    if not models:
        raise FerError("no model to evaluate")
    split = dataset.split_name(split) if split is not None else default_evaluation_split(dataset)
    subset = dataset.split(split) if split is not None else dataset
    per_model = [predict_probabilities(m, subset.images, tta=tta) for m in models]
    names = list(names) if names else [getattr(m, "name", "model") for m in models]
    return _evaluation(
        np.mean(per_model, axis=0), subset.labels, subset.sources, split or "all", tta, names, dataset.root
    )


def evaluate_model_file(
    model_file,
    dataset: Dataset,
    split: str | None = None,
    tta=False,
    name: str | None = None,
    load=None,
) -> Evaluation:
    """One saved model's evaluation, its probabilities kept on disk for next time.

    The dashboard evaluates whole splits (ResNet50 on PublicTest is over a minute on the 2-core
    CPU); the cache (`cached_probabilities`) makes that once per model file and machine instead of
    once per server.

    Args:
        model_file: a `.keras` file.
        load: how to load it when needed (default `fer_core.artifacts.load_model`).
    """
    import os

    split = dataset.split_name(split) if split is not None else default_evaluation_split(dataset)
    subset = dataset.split(split) if split is not None else dataset
    probabilities = cached_probabilities(model_file, subset.images, subset.labels, tta=tta, load=load)
    names = [name] if name else [os.path.splitext(os.path.basename(str(model_file)))[0]]
    return _evaluation(probabilities, subset.labels, subset.sources, split or "all", tta, names, dataset.root)


def cached_probabilities(model_file, images: np.ndarray, labels: np.ndarray, tta=False, load=None) -> np.ndarray:
    """`predict_probabilities` of a saved model on these images, kept on disk under
    FER_CACHE_DIR/probabilities for the next caller (the Evaluate page, `fer-core evaluate`, a
    distillation run's teachers). The key is the content of the model file and of the images and
    labels (so a promoted or retrained model, or other data, is never answered from an old entry),
    plus the TTA setting, Keras backend and version, which can move the last float digits. A
    missing, unreadable or malformed entry is computed again."""
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
        probabilities = predict_probabilities(load(model_file), images, tta=tta)
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
    if probabilities.dtype != np.float32 or probabilities.shape != (rows, len(CLASS_NAMES)):
        return None
    if not np.isfinite(probabilities).all():
        return None
    return probabilities


def ensemble_of(evaluations: list[Evaluation], names: list[str] | None = None) -> Evaluation:
    """The ensemble of models already evaluated on the same images: their mean probabilities,
    exactly what `evaluate` computes for those models together, without predicting again.

    Raises:
        FerError: the evaluations are not of the same split, images and TTA setting.
    """
    if not evaluations:
        raise FerError("no model to evaluate")
    first = evaluations[0]
    keys = ("split", "tta", "data", "n")
    for other in evaluations[1:]:
        if any(other.metrics.get(k) != first.metrics.get(k) for k in keys) or not np.array_equal(
            other.labels, first.labels
        ):
            raise FerError("an ensemble needs its models evaluated on the same split and TTA setting")
    names = list(names) if names else [n for e in evaluations for n in e.metrics.get("models", [])]
    probabilities = np.mean([e.probabilities for e in evaluations], axis=0)
    return _evaluation(
        probabilities,
        first.labels,
        first.sources,
        first.metrics["split"],
        first.metrics["tta"],
        names,
        first.metrics.get("data"),
    )


def _evaluation(probabilities, labels, sources, split, tta, names, data) -> Evaluation:
    metrics = compute_metrics(labels, probabilities)
    metrics = {
        "accuracy": metrics.pop("accuracy"),
        "macro_f1": metrics.pop("macro_f1"),
        "n": metrics.pop("n"),
        "split": split,
        **metrics,
        "tta": tta_mode(tta),
        "models": names,
        "data": data,
    }
    return Evaluation(metrics, probabilities.astype(np.float32), labels.copy(), sources.copy())
