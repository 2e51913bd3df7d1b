"""Which images train and which pick the best epoch: the selection split is never the one reported."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core.data import Dataset, default_training_split
from fer_core.errors import FerError
from fer_core.training.config import TrainConfig

# The name recorded for a held-out slice of Training used as the selection split.
VALIDATION_SLICE = "validation"
# The share of a one-pool dataset held out to report on (see TrainConfig.held_out).
HELD_OUT_FRACTION = 0.2


@dataclass
class TrainingData:
    x_train: np.ndarray  # (N, 48, 48, 1) uint8
    y_train: np.ndarray  # (N,) int
    x_val: np.ndarray
    y_val: np.ndarray
    train_split: str
    val_split: str


def selection_split_name(dataset: Dataset) -> str | None:
    """The split that picks the best epoch: PublicTest when PrivateTest is there to report on
    (the Kaggle CSV), `val` beside `train` and `test`, else None, meaning a stratified slice of
    Training (the folder layout, where PublicTest is the reported split). Selection is never on
    the split that is reported."""
    names = dataset.split_names
    if "PrivateTest" in names and "PublicTest" in names:
        return "PublicTest"
    for name in ("val", "validation", "Validation", "valid"):
        if name in names and "test" in names:
            return name
    return None


def group_aware_holdout(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of about `fraction` of the images, stratified by label, that never shares a
    group with the rest (scikit-learn's StratifiedGroupKFold, its first fold).

    Raises:
        FerError: fewer than two groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    distinct = len(set(groups.tolist()))
    if distinct < 2:
        raise FerError(f"only {distinct} group: a held-out slice needs images of at least two groups")
    folds = min(distinct, max(2, int(round(1 / fraction))))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    _train, held = next(splitter.split(np.zeros(len(labels)), labels, groups))
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return mask


def as_the_run_saw_it(config: TrainConfig, dataset: Dataset) -> tuple[TrainConfig, Dataset]:
    """The dataset split as a run with this config splits it: its groups (`group_by`), and for a
    one-pool dataset the held-out test split, seeded (the config records the share). A run, and
    everything that measures it again (promotion), go through here, so a model is never measured
    on the faces it trained or selected on."""
    import dataclasses

    from fer_core.data import default_evaluation_split
    from fer_core.data.groups import image_groups

    if config.group_by:
        dataset = dataclasses.replace(dataset, groups=image_groups(dataset, config.group_by))
    pool = not dataset.is_fer2013 and default_evaluation_split(dataset) is None
    if pool and default_training_split(dataset) is None:
        config = dataclasses.replace(config, held_out=config.held_out or HELD_OUT_FRACTION)
        dataset = hold_out_test(dataset, config.held_out, config.seed)
    return config, dataset


def hold_out_test(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """A dataset of one pool (no test split) with a seeded, stratified test split held out
    (`train` and `test`), group-aware where the dataset has groups: its numbers are then reported
    on faces, and people, the run never trained or selected on."""
    from sklearn.model_selection import train_test_split

    if dataset.groups is not None:
        test = group_aware_holdout(dataset.labels, dataset.groups, fraction, seed)
    else:
        counts = np.bincount(dataset.labels)
        stratify = dataset.labels if counts[counts > 0].min() >= 2 else None
        _, held = train_test_split(np.arange(len(dataset)), test_size=fraction, random_state=seed, stratify=stratify)
        test = np.zeros(len(dataset), dtype=bool)
        test[held] = True
    return replace_splits(dataset, np.where(test, "test", "train"))


def replace_splits(dataset: Dataset, splits: np.ndarray) -> Dataset:
    import dataclasses

    return dataclasses.replace(dataset, splits=np.asarray(splits, dtype=str))


def load_run_data(config: TrainConfig) -> Dataset:
    """The dataset a run's config names, its faces found first where `detect_faces` says so."""
    from fer_core.data import load_dataset

    if not config.detect_faces:
        return load_dataset(config.data)
    from fer_core.inference.faces import dataset_face_finder

    return load_dataset(config.data, find_face=dataset_face_finder())


def prepare_data(config: TrainConfig, dataset: Dataset) -> TrainingData:
    """Training images and the selection split (see selection_split_name).

    Raises:
        FerError: too few images to hold out a slice, or a batch larger than the training images.
    """
    dataset = dataset.head(config.limit)
    train_name = default_training_split(dataset)
    train = dataset.split(train_name) if train_name else dataset
    selection_name = selection_split_name(dataset)
    if selection_name:
        val = dataset.split(selection_name)
        x_tr, y_tr, x_va, y_va, val_name = train.images, train.labels, val.images, val.labels, selection_name
    elif train.groups is not None:  # one person's faces on one side only
        keep = group_aware_holdout(train.labels, train.groups, config.validation_split, config.seed)
        x_tr, y_tr, x_va, y_va = train.images[~keep], train.labels[~keep], train.images[keep], train.labels[keep]
        val_name = VALIDATION_SLICE
    else:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(train.labels, minlength=len(dataset.classes))
        stratify = train.labels if counts[counts > 0].min() >= 2 else None
        n_val = max(1, int(round(len(train) * config.validation_split)))
        if len(train) - n_val < 1:
            raise FerError(f"too few images to hold out a validation slice: {len(train)}")
        if stratify is not None and n_val < (counts > 0).sum():
            stratify = None  # too small a slice to hold every class once
        x_tr, x_va, y_tr, y_va = train_test_split(
            train.images, train.labels, test_size=n_val, random_state=config.seed, stratify=stratify
        )
        val_name = VALIDATION_SLICE
    if config.batch_size > len(x_tr):
        raise FerError(f"batch size {config.batch_size} is larger than the {len(x_tr)} training images")
    return TrainingData(x_tr[..., None], y_tr, x_va[..., None], y_va, train_name or "all", val_name)
