"""metrics.json: a trained model measured on the reported split, never the one that selected it."""

from __future__ import annotations

import os
from pathlib import Path

from fer_core.data import Dataset
from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic
from fer_core.rundir import CONFIG_FILE
from fer_core.training.config import TrainConfig
from fer_core.training.splits import TrainingData, as_the_run_saw_it, load_run_data, prepare_data


def read_config(path: Path) -> TrainConfig:
    """The TrainConfig saved beside a run's (or a trained model's) weights."""
    config_data = read_json(Path(path) / CONFIG_FILE)
    if not isinstance(config_data, dict):
        raise FerError(f"{path}: not a run directory (no readable {CONFIG_FILE})")
    return TrainConfig.from_dict(config_data)


def write_reported_metrics(folder: str | os.PathLike, dataset: Dataset | None = None, name: str | None = None) -> dict:
    """(Re)write metrics.json of a folder holding model.keras and config.json (a run, or a model
    being promoted) from the model file as it is now, so shipped numbers are the stored file's.

    Raises:
        FerError: the training data named in config.json cannot be loaded.
    """
    path = Path(folder)
    config = read_config(path)
    if dataset is None:
        if not config.data or not Path(config.data).exists():
            raise FerError(
                f"cannot measure {name or path.name}: its dataset {config.data or '(none)'} is not here "
                "(name a copy of it with --data)"
            )
        dataset = load_run_data(config)
    config, dataset = as_the_run_saw_it(config, dataset)
    return measure_best_model(path, config, dataset, prepare_data(config, dataset), name=name)


def measure_best_model(
    path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, name: str | None = None
) -> dict:
    """metrics.json: the best model on the reported split (never the one that selected it),
    without TTA, with flip TTA (`with_tta`) and with flip+zoom TTA (`with_flip_zoom`); where the
    data has no other split it says so."""
    from fer_core.artifacts import load_model
    from fer_core.catalog import dataset_tag
    from fer_core.data import default_evaluation_split
    from fer_core.evaluation import classifier_for, compute_metrics, evaluate, predict_probabilities
    from fer_core.evaluation.unseen import leave_out_seen, write_seen

    classify = classifier_for(load_model(path / "model.keras"))  # built once for both passes
    dataset = dataset.head(config.limit)
    split = default_evaluation_split(dataset)
    honest = split is not None and split != data.val_split
    names = [name or path.name]
    seen = write_seen(path, data.x_train, data.x_val)  # the faces it learned, by their pixels
    left_out = 0
    if honest:  # less any face it learned that the reported split holds again (a copy, a duplicate)
        dataset, split, left_out, _of = leave_out_seen(dataset, split, seen, names[0])
        metrics = evaluate([classify], dataset, split=split, names=names).metrics
        for key, tta in (("with_tta", "flip"), ("with_flip_zoom", "flip+zoom")):
            augmented = evaluate([classify], dataset, split=split, tta=tta, names=names).metrics
            metrics[key] = {k: augmented[k] for k in ("accuracy", "macro_f1", "loss")}
    else:  # only a Training split: the selection slice is all there is to measure
        metrics = compute_metrics(data.y_val, predict_probabilities(classify, data.x_val), dataset.classes)
        metrics.update(split=data.val_split, tta=False, models=names)
    metrics["selection_split"] = data.val_split
    metrics["left_out_learned"] = left_out
    metrics["reported_on_selection_split"] = not honest
    metrics["dataset"] = dataset_tag(dataset, metrics["split"]).to_dict()
    write_json_atomic(path / "metrics.json", metrics)
    return metrics
