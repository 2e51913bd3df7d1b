"""Who each image shows: groups (subjects) from a regular expression on the file names or a CSV's
`group` column, and the check that no image appears in two splits or under two classes."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

import numpy as np

from fer_core.data.dataset import Dataset
from fer_core.errors import FerError


def image_groups(dataset: Dataset, group_by: str | None = None) -> np.ndarray | None:
    """(N,) group names: the first group of `group_by` matched against each file name (a CK+
    name `S010_004_00000017.png` with `^(S\\d+)_` gives the subject S010), else the dataset's own
    groups (a CSV's `group` column), else None.

    Raises:
        FerError: an invalid expression, one without a group, or one that matches no file name.
    """
    if not group_by:
        return dataset.groups
    try:
        pattern = re.compile(group_by)
    except re.error as exc:
        raise FerError(f"--group-by is not a valid regular expression ({exc}). Received: {group_by}") from None
    if pattern.groups < 1:
        raise FerError(f"--group-by needs a (group) in the expression, e.g. '^(S\\d+)_'. Received: {group_by}")
    names = [PurePosixPath(str(source).replace("\\", "/")).name for source in dataset.sources]
    groups, unmatched = [], []
    for name in names:
        match = pattern.search(name)
        if match is None or not match.group(1):
            unmatched.append(name)
            groups.append("")
        else:
            groups.append(match.group(1))
    if len(unmatched) == len(names):
        raise FerError(f"--group-by '{group_by}' matches no file name (e.g. {names[0]})")
    if unmatched:
        raise FerError(
            f"--group-by '{group_by}' matches {len(names) - len(unmatched)} of {len(names)} file names; "
            f"not e.g. {', '.join(unmatched[:3])}"
        )
    return np.array(groups, dtype=str)


def leakage(dataset: Dataset, examples: int = 5) -> dict:
    """Identical images (by the hash of their pixels) that sit in two splits or under two classes,
    named by file: a test that shares faces with training measures memory, not recognition."""
    by_hash: dict[str, list[int]] = {}
    for index, image in enumerate(dataset.images):
        by_hash.setdefault(hashlib.sha1(image.tobytes()).hexdigest(), []).append(index)
    across_splits, across_classes = [], []
    for indices in by_hash.values():
        if len(indices) < 2:
            continue
        files = [str(dataset.sources[i]) for i in indices]
        if len({dataset.splits[i] for i in indices}) > 1:
            across_splits.append(files)
        if len({int(dataset.labels[i]) for i in indices}) > 1:
            across_classes.append(files)
    return {
        "identical_across_splits": {"count": len(across_splits), "examples": across_splits[:examples]},
        "identical_across_classes": {"count": len(across_classes), "examples": across_classes[:examples]},
    }
