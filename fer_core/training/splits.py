"""Which images train and which pick the best epoch: the selection split is never the one reported."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core import NUM_CLASSES
from fer_core.data import Dataset, default_training_split
from fer_core.errors import FerError
from fer_core.training.config import TrainConfig

# The name recorded for a held-out slice of Training used as the selection split.
VALIDATION_SLICE = "validation"


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
    (the Kaggle CSV), else None, meaning a stratified slice of Training (the folder layout, where
    PublicTest is the reported split). Selection is never on the split that is reported."""
    names = dataset.split_names
    return "PublicTest" if "PrivateTest" in names and "PublicTest" in names else None


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
    else:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(train.labels, minlength=NUM_CLASSES)
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
