"""Accuracy, F1 per class and overall, confusion matrices, loss and calibration, from labels and
probabilities in the same order."""

from __future__ import annotations

import numpy as np

from fer_core.errors import FerError

CALIBRATION_BINS = 10


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, classes) -> dict:
    """Accuracy, macro/weighted F1, loss, per-class P/R/F1/support, confusion matrices, calibration.
    `classes`: the names of the probabilities' columns (the model's)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        raise FerError("nothing to evaluate: the split holds no images")
    classes = list(classes)
    if probabilities.shape != (len(labels), len(classes)):
        raise FerError(
            f"the model gives {probabilities.shape[1] if probabilities.ndim == 2 else '?'} probabilities per face "
            f"but the data has {len(classes)} classes ({', '.join(classes)})"
        )
    class_ids = list(range(len(classes)))
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
        "classes": classes,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
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
