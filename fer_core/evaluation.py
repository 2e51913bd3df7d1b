"""The one evaluation routine: metrics, confusion matrices, flip TTA and ensembles.

Predictions are always made in the dataset's fixed order and compared with labels in that same
order; the paper's chance-level per-class tables are what a shuffled evaluation order produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_core import CLASS_NAMES
from fer_core.data import Dataset, default_evaluation_split
from fer_core.errors import FerError

CALIBRATION_BINS = 10


def predict_probabilities(model, images: np.ndarray, batch_size: int = 256, tta: bool = False) -> np.ndarray:
    """Class probabilities for (N, 48, 48) or (N, 48, 48, 1) raw uint8 faces, in input order.

    With `tta`, the mean of the probabilities for each face and its mirror image.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if len(x) == 0:
        return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
    x = x.astype(np.float32, copy=False)
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    if tta:
        flipped = np.ascontiguousarray(x[:, :, ::-1, :])
        probs = (probs + np.asarray(model.predict(flipped, batch_size=batch_size, verbose=0), dtype=np.float32)) / 2
    return probs


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
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": mean_conf, "accuracy": accuracy})
    return {"ece": float(ece), "bins": rows}


def evaluate(
    models: list,
    dataset: Dataset,
    split: str | None = None,
    tta: bool = False,
    batch_size: int = 256,
    names: list[str] | None = None,
) -> Evaluation:
    """Evaluate one model, or the ensemble (mean probabilities) of several, on one split.

    Args:
        models: loaded Keras models; more than one means their ensemble.
        dataset: the loaded dataset.
        split: a split name; None picks PrivateTest, else PublicTest, else test, else all images.
        tta: average each face with its horizontal mirror.
        names: how to name the models in the metrics.

    Returns:
        An `Evaluation` whose `metrics` is what `fer-core evaluate --json` prints.
    """
    if not models:
        raise FerError("no model to evaluate")
    split = split if split is not None else default_evaluation_split(dataset)
    subset = dataset.split(split) if split is not None else dataset
    probabilities = np.mean(
        [predict_probabilities(m, subset.images, batch_size=batch_size, tta=tta) for m in models], axis=0
    )
    metrics = compute_metrics(subset.labels, probabilities)
    metrics = {
        "accuracy": metrics.pop("accuracy"),
        "macro_f1": metrics.pop("macro_f1"),
        "n": metrics.pop("n"),
        "split": split or "all",
        **metrics,
        "tta": bool(tta),
        "models": list(names) if names else [getattr(m, "name", "model") for m in models],
        "data": dataset.root,
    }
    return Evaluation(metrics, probabilities.astype(np.float32), subset.labels.copy(), subset.sources.copy())
