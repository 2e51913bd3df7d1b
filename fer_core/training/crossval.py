"""Cross-validation of a small dataset: K stratified folds that never put one group (a subject) on
both sides, each fold a training run of its own inside one crossval folder, and the numbers over
the folds (per fold, mean and standard deviation, the pooled confusion matrix) in crossval.json.

The folds are scikit-learn's StratifiedGroupKFold over every image of the dataset (seeded), so the
classic inflation, frames of one person in training and in test, cannot happen when the groups
are given (`--group-by` on the file names, or a CSV's group column); without groups each image is
its own group. folds.json names every image's fold, so each fold's numbers can be recomputed;
out_of_fold.csv holds every image's probabilities from the fold's model that never saw it (the
label review's input: `fer_core.evaluation.label_review`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from fer_core.errors import FerError
from fer_core.evaluation.label_review import OUT_OF_FOLD_FILE
from fer_core.fileio import read_json, write_json_atomic
from fer_core.training.config import TrainConfig

CROSSVAL_FILE = "crossval.json"
FOLDS_FILE = "folds.json"
# The recipe, the folds and the grouping: what `--resume` goes on with (not config.json: a folder
# holding one is a run, and a cross-validation is not one).
SETTINGS_FILE = "crossval_config.json"


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
    ready=None,
) -> dict:
    """Train `config` once per fold in `out`/fold-K/, each tested on its held-out fold; returns
    (and writes to `out`/crossval.json) the folds' numbers and their summary, and writes every
    image's out-of-fold probabilities (`out_of_fold.csv`, what the label review reads).

    A folder that already holds this cross-validation's folds.json (a stopped or killed one)
    resumes: its finished folds are kept, the others trained again. A STOP file in `out`
    (`fer-core stop DIR`) stops the running fold after its current batch and starts no other;
    the finished folds stay for a resume. `config.minutes`, when set, is the budget of the whole
    cross-validation, shared by the folds. `ready()` is called once the folds are made, before
    the first is trained (the CLI says the estimated length there).

    Raises:
        FerError: folds that cannot be made, a folder holding another cross-validation, or a stop.
    """
    from fer_core.data.groups import image_groups
    from fer_core.rundir import STOP_FILE
    from fer_core.training.splits import load_run_data, replace_splits

    dataset = dataset if dataset is not None else load_run_data(config)
    groups = image_groups(dataset, group_by)
    fold_of = assign_folds(dataset.labels, groups, folds, config.seed, dataset.classes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "folds": folds,
        "seed": config.seed,
        "group_by": group_by,
        "files": {str(source): int(k) for source, k in zip(dataset.sources, fold_of)},
    }
    recorded = read_json(out / FOLDS_FILE, None)
    if recorded is not None and recorded != plan:
        raise FerError(
            f"{out}: holds another cross-validation (other data, folds, seed or groups); name another folder"
        )
    write_json_atomic(out / FOLDS_FILE, plan)
    write_crossval_settings(out, config, folds, group_by)
    if ready is not None:
        ready()
    # Keras loads only now (seconds): folds that cannot be made are refused before it, at once.
    from fer_core.training.loop import train

    per_fold_minutes = config.minutes / folds if config.minutes else None
    rows, matrix = [], None
    for k in range(folds):
        run_dir = out / f"fold-{k + 1}"
        fold_data = replace_splits(dataset, np.where(fold_of == k, "test", "train"))
        fold_data = dataclasses.replace(fold_data, groups=groups)
        if not finished_fold(run_dir):
            if (out / STOP_FILE).exists():
                (out / STOP_FILE).unlink(missing_ok=True)
                raise FerError(
                    f"{out}: stopped before fold {k + 1} of {folds}; resume with fer-core crossval --resume {out}"
                )
            if run_dir.exists():  # a fold stopped or killed part-way: trained again from its start
                shutil.rmtree(run_dir)
            fold_config = dataclasses.replace(config, minutes=per_fold_minutes, group_by=None, classes=None)
            run = train(fold_config, run_dir=run_dir, dataset=fold_data, echo=echo)
            if not finished_fold(run):
                (out / STOP_FILE).unlink(missing_ok=True)
                raise FerError(
                    f"{out}: stopped in fold {k + 1} of {folds}; resume with fer-core crossval --resume {out}"
                )
        metrics = read_json(run_dir / "metrics.json", {}) or {}
        _write_fold_predictions(run_dir, fold_data, k)
        groups_in_test = sorted(set(groups[fold_of == k].tolist())) if groups is not None else None
        rows.append(
            {
                "fold": k + 1,
                "run": str(run_dir),
                "train_images": int((fold_of != k).sum()),
                "test_images": int((fold_of == k).sum()),
                "test_groups": groups_in_test,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
            }
        )
        fold_matrix = np.array(metrics["confusion_matrix"])
        matrix = fold_matrix if matrix is None else matrix + fold_matrix
    _merge_predictions(out, folds)
    result = _summary(config, dataset, folds, group_by, groups, rows, matrix)
    result["near_identical_across_folds"] = near_identical_across_folds(dataset, fold_of)
    write_json_atomic(out / CROSSVAL_FILE, result)
    return result


def near_identical_across_folds(dataset, fold_of: np.ndarray, examples: int = 5) -> dict:
    """Images with the same perceptual hash (frames of one sequence, one face saved twice) that
    different folds hold: each such pair lets a fold's model be tested on a face it trained on,
    which a subject pattern (--group-by) prevents."""
    from fer_core.data.groups import near_identical, perceptual_hashes

    found = near_identical(perceptual_hashes(dataset.images), fold_of)
    named = [[str(dataset.sources[i]) for i in indices] for indices in found]
    return {"count": len(named), "examples": named[:examples]}


def finished_fold(run_dir: Path) -> bool:
    """Whether a fold's run ended and reported on its held-out fold (a stopped run has no metrics)."""
    metrics = read_json(Path(run_dir) / "metrics.json", None)
    return isinstance(metrics, dict) and metrics.get("split") == "test"


def _write_fold_predictions(run_dir: Path, fold_data, k: int) -> None:
    """fold-K/held_out.txt (the fold's images) and fold-K/out_of_fold.csv (the fold's best model on
    them), each made once a fold."""
    from fer_core.evaluation import evaluate_model_file
    from fer_core.fileio import write_atomic

    from fer_core.evaluation.unseen import HELD_OUT_FILE
    from fer_core.fileio import write_text_atomic

    test = fold_data.split("test")
    held_out = run_dir / HELD_OUT_FILE  # Evaluate measures the fold's model on its fold, never on its training
    if not held_out.is_file():
        write_text_atomic(held_out, "".join(f"{source}\n" for source in test.sources))
    path = run_dir / OUT_OF_FOLD_FILE
    if path.is_file():
        return
    evaluation = evaluate_model_file(run_dir / "model.keras", fold_data, split="test", name=f"fold-{k + 1}")
    columns = ["path", "group", "fold", "label", *fold_data.classes]
    groups = test.groups if test.groups is not None else np.array([""] * len(test))
    table = {
        "path": evaluation.sources,
        "group": groups,
        "fold": np.full(len(test), k + 1),
        "label": [fold_data.classes[label] for label in evaluation.labels],
        **{name: evaluation.probabilities[:, j] for j, name in enumerate(fold_data.classes)},
    }
    import pandas as pd

    frame = pd.DataFrame(table, columns=columns)
    write_atomic(path, lambda temporary: frame.to_csv(temporary, index=False, float_format="%.6f"))


def _merge_predictions(out: Path, folds: int) -> None:
    """out_of_fold.csv: every image once, from the fold that did not train on it."""
    import pandas as pd

    from fer_core.fileio import write_atomic

    frame = pd.concat([pd.read_csv(out / f"fold-{k + 1}" / OUT_OF_FOLD_FILE, dtype=str) for k in range(folds)])
    write_atomic(out / OUT_OF_FOLD_FILE, lambda temporary: frame.to_csv(temporary, index=False))


def _summary(config, dataset, folds, group_by, groups, rows, matrix) -> dict:
    from fer_core.evaluation.metrics import compute_metrics

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
        "out_of_fold": OUT_OF_FOLD_FILE,
    }
    # The pooled per-class scores, from the pooled confusion matrix's rows and columns.
    labels = np.repeat(np.arange(len(matrix)), matrix.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(len(matrix)), row) for row in matrix])
    one_hot = np.eye(len(matrix))[predicted]
    result["pooled"]["per_class"] = compute_metrics(labels, one_hot, dataset.classes)["per_class"]
    return result


def write_crossval_settings(folder: Path, config: TrainConfig, folds: int, group_by: str | None) -> None:
    write_json_atomic(Path(folder) / SETTINGS_FILE, {**config.to_dict(), "folds": folds, "group_by": group_by})


def crossval_folder(model: str, root: str | os.PathLike | None = None, create: bool = True) -> Path:
    """A new, empty `crossval-<time>-<model>` folder in the runs folder (with `create` False, its
    name only: `crossval` makes it once the folds are known to work).

    Raises:
        FerError: it cannot be made (two launches in one second never share one).
    """
    from fer_core.paths import runs_dir
    from fer_core.rundir import now

    base = Path(root) if root is not None else runs_dir()
    path = base / f"crossval-{now().replace(':', '').replace('-', '')[:15]}-{model}"
    if not create:
        return path
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise FerError(f"{path} exists already; launch again in a second") from None
    except OSError as exc:
        raise FerError(f"cannot create {path}: {exc.strerror}") from None
    return path
