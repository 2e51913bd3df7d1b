"""Dataset statistics: counts per split and class, imbalance, mean faces, pixel summary, odd images."""

from __future__ import annotations

import numpy as np

from pathlib import Path

from fer_core.data import Dataset, default_training_split
from fer_core.data.groups import image_groups, leakage

# An image whose pixels span at most this range is blank (one flat colour); one whose standard
# deviation is under NEAR_CONSTANT_STD carries almost no face (FER2013 has a handful of each).
BLANK_RANGE = 2
NEAR_CONSTANT_STD = 6.0
HISTOGRAM_BINS = 32


def class_counts(dataset: Dataset) -> dict[str, dict[str, int]]:
    """{split: {class: count}} with every class listed, zeros included."""
    counts = {}
    for split in dataset.split_names:
        per_class = np.bincount(dataset.labels[dataset.splits == split], minlength=len(dataset.classes))
        counts[split] = {name: int(per_class[i]) for i, name in enumerate(dataset.classes)}
    return counts


def mean_faces(dataset: Dataset) -> dict[str, np.ndarray]:
    """The mean 48x48 face of each class present (float32, 0..255)."""
    faces = {}
    for i, name in enumerate(dataset.classes):
        mask = dataset.labels == i
        if mask.any():
            faces[name] = dataset.images[mask].mean(axis=0, dtype=np.float64).astype(np.float32)
    return faces


def odd_images(dataset: Dataset) -> dict[str, np.ndarray]:
    """Indices of blank and near-constant images (near-constant excludes the blank ones)."""
    flat = dataset.images.reshape(len(dataset), -1)
    spread = flat.max(axis=1).astype(np.int16) - flat.min(axis=1)
    std = flat.std(axis=1, dtype=np.float32)
    blank = spread <= BLANK_RANGE
    near = (std < NEAR_CONSTANT_STD) & ~blank
    return {"blank": np.flatnonzero(blank), "near_constant": np.flatnonzero(near)}


def pixel_summary(dataset: Dataset) -> dict:
    flat = dataset.images.reshape(-1)
    histogram, edges = np.histogram(flat, bins=HISTOGRAM_BINS, range=(0, 256))
    return {
        "mean": float(flat.mean(dtype=np.float64)),
        "std": float(flat.std(dtype=np.float64)),
        "min": int(flat.min()),
        "max": int(flat.max()),
        "percentiles": {
            str(p): float(v) for p, v in zip((1, 25, 50, 75, 99), np.percentile(flat, (1, 25, 50, 75, 99)))
        },
        "histogram": {"counts": histogram.astype(int).tolist(), "edges": edges.astype(int).tolist()},
    }


def compute_statistics(dataset: Dataset, examples: int = 10, group_by: str | None = None) -> dict:
    """Everything `fer-core stats --json` prints (mean faces as 48x48 lists of rounded floats);
    with groups (`group_by` on the file names, or the CSV's group column), images per group.

    The imbalance ratio is largest over smallest class count in the training split (all images
    when there is no training split).
    """
    counts = class_counts(dataset)
    train = default_training_split(dataset)
    classes = list(dataset.classes)
    basis = np.array(list(counts[train].values()) if train else np.bincount(dataset.labels, minlength=len(classes)))
    nonzero = basis[basis > 0]
    odd = odd_images(dataset)
    return {
        "splits": counts,
        "totals": {split: sum(c.values()) for split, c in counts.items()},
        "n": len(dataset),
        "name": Path(dataset.root).name,
        "classes": classes,
        "imbalance": {
            "basis": train or "all",
            "ratio": float(nonzero.max() / nonzero.min()) if len(nonzero) else None,
            "largest": classes[int(basis.argmax())],
            "smallest": classes[int(np.where(basis > 0, basis, basis.max() + 1).argmin())],
        },
        "pixels": pixel_summary(dataset),
        "blank": {"count": int(len(odd["blank"])), "examples": dataset.sources[odd["blank"][:examples]].tolist()},
        "near_constant": {
            "count": int(len(odd["near_constant"])),
            "examples": dataset.sources[odd["near_constant"][:examples]].tolist(),
        },
        "mean_faces": {k: v.round(2).tolist() for k, v in mean_faces(dataset).items()},
        "load_report": dataset.report.messages(),
        "leakage": leakage(dataset),
        "groups": _group_counts(image_groups(dataset, group_by)),
    }


def _group_counts(groups) -> dict | None:
    if groups is None:
        return None
    names, counts = np.unique(groups, return_counts=True)
    return {
        "count": int(len(names)),
        "images_per_group": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "per_group": {str(n): int(c) for n, c in zip(names, counts)},
    }
