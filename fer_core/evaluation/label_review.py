"""Suspect labels: the images whose given label the out-of-fold model most doubts, by confident
learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021).

Written here from the paper's definitions, not taken from cleanlab, which implements them but is
AGPL-3.0 (this project is MIT; docs/own-data.md says so). The steps, in the paper's terms, on
out-of-sample predicted probabilities only (a cross-validation's out-of-fold ones: a model that
saw an image in training would vouch for its label):

1. per-class thresholds t_j: the mean predicted probability of class j over the images labelled j
   (the class's average self-confidence);
2. the confident joint C[i][j]: each image labelled i counts towards j, the class of highest
   probability among those at or above their threshold (images with none above are not counted);
3. C calibrated so each row sums to that label's image count, then normalised into the estimated
   joint Q of given and true labels;
4. prune by noise rate: for each given label i and other class j, the round(n * Q[i][j]) images
   labelled i with the largest margin p_j - p_i are label issues;
5. the issues ranked by self-confidence, the probability of the given label, lowest first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fer_core.errors import FerError

OUT_OF_FOLD_FILE = "out_of_fold.csv"
# The columns before the probabilities in out_of_fold.csv; one probability column per class follows.
OUT_OF_FOLD_COLUMNS = ("path", "group", "fold", "label")
REVIEW_COLUMNS = ("rank", "path", "group", "fold", "given", "suggested", "suggested_probability", "quality")


def per_class_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """t_j: the mean probability of class j over the images labelled j (NaN for a class no
    image is labelled with: nothing can be confidently that class then)."""
    classes = probabilities.shape[1]
    thresholds = np.full(classes, np.nan)
    for j in range(classes):
        mine = labels == j
        if mine.any():
            thresholds[j] = probabilities[mine, j].mean()
    return thresholds


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, the confidently counted class of each image or -1): C[i][j] counts the images labelled
    i whose most probable class among those at or above their threshold is j."""
    thresholds = per_class_thresholds(labels, probabilities)
    above = probabilities >= np.where(np.isnan(thresholds), np.inf, thresholds)[None, :]
    masked = np.where(above, probabilities, -np.inf)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    classes = probabilities.shape[1]
    joint = np.zeros((classes, classes), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, confident


def estimated_joint(labels: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Q: the confident joint with each row scaled to its label's image count, over the total."""
    counts = np.bincount(labels, minlength=len(joint)).astype(float)
    rows = joint.sum(axis=1, keepdims=True).astype(float)
    calibrated = np.divide(joint * counts[:, None], rows, out=np.zeros(joint.shape), where=rows > 0)
    total = calibrated.sum()
    return calibrated / total if total else calibrated


def find_label_issues(labels, probabilities) -> np.ndarray:
    """The indices of the images whose given label is likely wrong, most doubtful first (prune by
    noise rate, ranked by self-confidence).

    Args:
        labels: (N,) the given labels, class indices.
        probabilities: (N, K) out-of-sample predicted probabilities, rows summing to 1.

    Raises:
        FerError: shapes that do not match, or probabilities outside [0, 1].
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(labels) != len(probabilities):
        raise FerError(f"labels ({len(labels)}) and probabilities {probabilities.shape} do not match")
    if len(labels) and (labels.min() < 0 or labels.max() >= probabilities.shape[1]):
        raise FerError(f"labels must be class indices 0..{probabilities.shape[1] - 1}")
    if probabilities.size and (probabilities.min() < 0 or probabilities.max() > 1):
        raise FerError("probabilities must lie in [0, 1]")
    joint, _confident = confident_joint(labels, probabilities)
    noise = estimated_joint(labels, joint)
    n, classes = len(labels), probabilities.shape[1]
    issues = np.zeros(n, dtype=bool)
    for i in range(classes):
        mine = np.flatnonzero(labels == i)
        for j in range(classes):
            count = int(round(n * noise[i, j])) if i != j else 0
            if count <= 0 or not len(mine):
                continue
            margin = probabilities[mine, j] - probabilities[mine, i]
            issues[mine[np.argsort(-margin, kind="stable")[:count]]] = True
    flagged = np.flatnonzero(issues)
    self_confidence = probabilities[flagged, labels[flagged]]
    return flagged[np.argsort(self_confidence, kind="stable")]


def read_out_of_fold(folder: str | os.PathLike):
    """A cross-validation's out_of_fold.csv as (DataFrame, class names).

    Raises:
        FerError: no such file (a cross-validation from before it was written, or not finished),
            or one without the columns it needs.
    """
    import pandas as pd

    path = Path(folder) / OUT_OF_FOLD_FILE
    if not path.is_file():
        raise FerError(
            f"{folder}: no {OUT_OF_FOLD_FILE}: the cross-validation has not finished, or predates out-of-fold "
            "probabilities (run it again: fer-core crossval --resume DIR)"
        )
    table = pd.read_csv(path, dtype={"path": str, "group": str, "label": str}, keep_default_na=False)
    missing = [c for c in OUT_OF_FOLD_COLUMNS if c not in table.columns]
    classes = [c for c in table.columns if c not in OUT_OF_FOLD_COLUMNS]
    if missing or len(classes) < 2:
        raise FerError(
            f"{path}: not an out-of-fold file (needs {', '.join(OUT_OF_FOLD_COLUMNS)} and a column per class)"
        )
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise FerError(f"{path}: labels without a probability column: {', '.join(unknown[:5])}")
    return table, classes


def labelled_images(folder: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Every image of a cross-validated dataset as (path, given label, group), from its out_of_fold.csv."""
    table, _classes = read_out_of_fold(folder)
    return list(zip(table["path"], table["label"], table["group"]))


def review(folder: str | os.PathLike):
    """The suspects of a cross-validation (REVIEW_COLUMNS), most doubtful first: each image's
    given label, the class the out-of-fold model suggests (the most probable), that class's
    probability, and the quality of the given label (its probability; lower is more suspect)."""
    import pandas as pd

    table, classes = read_out_of_fold(folder)
    probabilities = table[classes].to_numpy(dtype=np.float64)
    labels = np.array([classes.index(label) for label in table["label"]], dtype=np.int64)
    order = find_label_issues(labels, probabilities)
    suggested = probabilities[order].argmax(axis=1)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "path": table["path"].to_numpy()[order],
            "group": table["group"].to_numpy()[order],
            "fold": table["fold"].to_numpy()[order],
            "given": table["label"].to_numpy()[order],
            "suggested": [classes[k] for k in suggested],
            "suggested_probability": probabilities[order, suggested].round(4),
            "quality": probabilities[order, labels[order]].round(4),
        },
        columns=list(REVIEW_COLUMNS),
    )
