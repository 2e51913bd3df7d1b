"""Cross-validation of a small dataset: K stratified folds that never put one group (a subject) on
both sides, each fold a training run of its own inside one crossval folder, and the numbers over
the folds (per fold, mean and standard deviation, the pooled confusion matrix) in crossval.json.

The folds are scikit-learn's StratifiedGroupKFold over every image of the dataset (seeded), so the
classic inflation, frames of one person in training and in test, cannot happen when the groups
are given (`--group-by` on the file names, or a CSV's group column); without groups each image is
its own group. folds.json names every image's fold, so each fold's numbers can be recomputed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic
from fer_core.training.config import TrainConfig

CROSSVAL_FILE = "crossval.json"
FOLDS_FILE = "folds.json"


def assign_folds(labels: np.ndarray, groups: np.ndarray | None, folds: int, seed: int, classes=None) -> np.ndarray:
    """(N,) the fold (0..folds-1) each image is tested in.

    Raises:
        FerError: fewer than 2 folds, fewer groups than folds, or a class with fewer images than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not isinstance(folds, int) or folds < 2:
        raise FerError(f"--folds must be 2 or more. Received: {folds}")
    groups = groups if groups is not None else np.arange(len(labels)).astype(str)
    distinct = len(set(groups.tolist()))
    if distinct < folds:
        raise FerError(f"{distinct} groups cannot fill {folds} folds: give fewer folds or more subjects")
    counts = np.bincount(labels)
    small = [k for k, c in enumerate(counts) if 0 < c < folds]
    if small:
        name = classes[small[0]] if classes is not None else small[0]
        raise FerError(f"class {name} has {counts[small[0]]} images, fewer than the {folds} folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.full(len(labels), -1)
    for k, (_train, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        fold_of[test] = k
    return fold_of


def crossval(
    config: TrainConfig,
    folds: int,
    out: str | os.PathLike,
    group_by: str | None = None,
    dataset=None,
    echo: bool = False,
) -> dict:
    """Train `config` once per fold in `out`/fold-K/, each tested on its held-out fold; returns
    (and writes to `out`/crossval.json) the folds' numbers and their summary.

    `config.minutes`, when set, is the budget of the whole cross-validation, shared by the folds.
    """
    from fer_core.data.groups import image_groups
    from fer_core.evaluation.metrics import compute_metrics
    from fer_core.training.loop import train
    from fer_core.training.splits import load_run_data, replace_splits

    dataset = dataset if dataset is not None else load_run_data(config)
    groups = image_groups(dataset, group_by)
    fold_of = assign_folds(dataset.labels, groups, folds, config.seed, dataset.classes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / FOLDS_FILE,
        {
            "folds": folds,
            "seed": config.seed,
            "group_by": group_by,
            "files": {str(source): int(k) for source, k in zip(dataset.sources, fold_of)},
        },
    )
    per_fold_minutes = config.minutes / folds if config.minutes else None
    rows, matrix = [], None
    for k in range(folds):
        fold_data = replace_splits(dataset, np.where(fold_of == k, "test", "train"))
        fold_data = dataclasses.replace(fold_data, groups=groups)
        fold_config = dataclasses.replace(config, minutes=per_fold_minutes, group_by=None, classes=None)
        run = train(fold_config, run_dir=out / f"fold-{k + 1}", dataset=fold_data, echo=echo)
        metrics = read_json(run / "metrics.json", {}) or {}
        if metrics.get("split") != "test":
            raise FerError(f"{run}: the fold's run did not report on its held-out fold")
        groups_in_test = sorted(set(groups[fold_of == k].tolist())) if groups is not None else None
        rows.append(
            {
                "fold": k + 1,
                "run": str(run),
                "train_images": int((fold_of != k).sum()),
                "test_images": int((fold_of == k).sum()),
                "test_groups": groups_in_test,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
            }
        )
        fold_matrix = np.array(metrics["confusion_matrix"])
        matrix = fold_matrix if matrix is None else matrix + fold_matrix
    accuracy = np.array([r["accuracy"] for r in rows])
    macro_f1 = np.array([r["macro_f1"] for r in rows])
    total = matrix.sum()
    result = {
        "model": config.model,
        "data": config.data,
        "classes": list(dataset.classes),
        "folds": folds,
        "group_by": group_by,
        "groups": None if groups is None else int(len(set(groups.tolist()))),
        "seed": config.seed,
        "init_from": (config.init_from or {}).get("path"),
        "per_fold": rows,
        "accuracy": {"mean": float(accuracy.mean()), "std": float(accuracy.std(ddof=1))},
        "macro_f1": {"mean": float(macro_f1.mean()), "std": float(macro_f1.std(ddof=1))},
        "pooled": {
            "accuracy": float(np.trace(matrix) / total) if total else None,
            "confusion_matrix": matrix.astype(int).tolist(),
            "n": int(total),
        },
    }
    # The pooled per-class scores, from the pooled confusion matrix's rows and columns.
    labels = np.repeat(np.arange(len(matrix)), matrix.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(len(matrix)), row) for row in matrix])
    one_hot = np.eye(len(matrix))[predicted]
    result["pooled"]["per_class"] = compute_metrics(labels, one_hot, dataset.classes)["per_class"]
    write_json_atomic(out / CROSSVAL_FILE, result)
    return result


def list_crossvals(root: str | os.PathLike | None = None) -> list[tuple[Path, dict]]:
    """(folder, crossval.json) of every finished cross-validation in the runs folder, newest first."""
    from fer_core.paths import runs_dir

    base = Path(root) if root is not None else runs_dir()
    found = [(file.parent, read_crossval(file.parent)) for file in base.glob(f"*/{CROSSVAL_FILE}")]
    return sorted(((f, d) for f, d in found if d), key=lambda item: item[0].stat().st_mtime, reverse=True)


def read_crossval(folder: str | os.PathLike) -> dict | None:
    """A crossval folder's crossval.json, or None."""
    data = read_json(Path(folder) / CROSSVAL_FILE, None)
    return data if isinstance(data, dict) else None
