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
        raise FerError(f"the subject pattern `{group_by}` is not a valid regular expression ({exc})") from None
    if pattern.groups < 1:
        raise FerError(f"the subject pattern `{group_by}` needs a (group) naming the person, e.g. `^(S\\d+)_`")
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
        raise FerError(f"the subject pattern `{group_by}` matches no file name (e.g. `{names[0]}`)")
    if unmatched:
        raise FerError(
            f"the subject pattern `{group_by}` matches {len(names) - len(unmatched)} of {len(names)} file names; "
            f"not e.g. {', '.join(f'`{name}`' for name in unmatched[:3])}"
        )
    return np.array(groups, dtype=str)


# Tried in turn on the file names: a subject code (S005_..., sub-12_...), then anything before the
# first "_" or "-".
GROUP_PATTERNS = (r"^([A-Za-z]+\d+)[_-]", r"^([^_]+)_", r"^([^-]+)-")


def propose_group_pattern(dataset: Dataset) -> str | None:
    """A `group_by` expression for file names that share prefixes (several images a subject), or
    None: the first of GROUP_PATTERNS that matches every name and gives two or more groups,
    averaging two or more images each."""
    names = [PurePosixPath(str(source).replace("\\", "/")).name for source in dataset.sources]
    not_people = {name.lower() for name in [*dataset.split_names, *dataset.classes]}
    for pattern in GROUP_PATTERNS:
        compiled = re.compile(pattern)
        matches = [compiled.search(name) for name in names]
        if not names or not all(matches):
            continue
        groups = {match.group(1) for match in matches}
        # A prefix that names a split or a class (FER2013's Training_/PublicTest_) names no person.
        if {group.lower() for group in groups} & not_people:
            continue
        if 2 <= len(groups) <= len(names) / 2:
            return pattern
    return None


def group_preview(dataset: Dataset, group_by: str) -> str:
    """How `group_by` splits the dataset, in words: "118 subjects; S005 from S005_001_00000011.png".

    Raises:
        FerError: as image_groups.
    """
    groups = image_groups(dataset, group_by)
    name = PurePosixPath(str(dataset.sources[0]).replace("\\", "/")).name
    count = len(set(groups.tolist()))
    return f"{count:,} subject{'s' if count != 1 else ''}; {groups[0]} from {name}"


def perceptual_hashes(images: np.ndarray) -> np.ndarray:
    """(N,) a 64-bit difference hash of each face (Krawetz's dHash: the face shrunk to 9x8, each
    pixel brighter than its right neighbour or not): frames of one sequence, a face re-saved or
    slightly shifted in brightness share it, where a hash of the bytes would not."""
    import cv2

    bits = np.empty((len(images), 64), dtype=bool)
    for index, image in enumerate(images):
        small = cv2.resize(np.asarray(image, dtype=np.uint8), (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
        bits[index] = (small[:, 1:] > small[:, :-1]).ravel()
    return np.packbits(bits, axis=1).view(">u8").ravel()


def near_identical(hashes: np.ndarray, sides: np.ndarray) -> list[list[int]]:
    """Groups of images with the same perceptual hash that fall on more than one side (`sides`:
    each image's split or fold)."""
    by_hash: dict[int, list[int]] = {}
    for index, value in enumerate(hashes.tolist()):
        by_hash.setdefault(value, []).append(index)
    return [indices for indices in by_hash.values() if len({str(sides[i]) for i in indices}) > 1]


def leakage(dataset: Dataset, examples: int = 5) -> dict:
    """Identical images (by the hash of their pixels) that sit in two splits or under two classes,
    and near-identical ones (the same perceptual hash: frames of one sequence) in two splits,
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
    identical = {tuple(files) for files in across_splits}
    near = [
        files
        for files in (
            [str(dataset.sources[i]) for i in group]
            for group in near_identical(perceptual_hashes(dataset.images), dataset.splits)
        )
        if tuple(files) not in identical
    ]
    return {
        "identical_across_splits": {"count": len(across_splits), "examples": across_splits[:examples]},
        "identical_across_classes": {"count": len(across_classes), "examples": across_classes[:examples]},
        "near_identical_across_splits": {"count": len(near), "examples": near[:examples]},
    }
