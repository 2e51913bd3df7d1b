"""Never a number from faces a model learned: the images a run trained or selected on, recognised
by their pixels (a content hash of the 48x48 face as the model saw it), whatever path, folder,
corrected copy or duplicate they come through.

A run records them in `seen_images.npy` (sorted uint64 hashes), promotion carries the file, and
every measurement (a run's final one, promotion's, `fer-core evaluate`, Evaluate) leaves them out
of the split it measures, says how many, and refuses a split that holds nothing else. Records made
before the file existed fall back to their data path: the same folder's training split, or all
but its `held_out.txt`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import weakref
from pathlib import Path

import numpy as np

from fer_core.data import Dataset, default_evaluation_split, default_training_split
from fer_core.errors import FerError
from fer_core.fileio import write_atomic

SEEN_FILE = "seen_images.npy"  # content hashes of every image a run trained or selected on
HELD_OUT_FILE = "held_out.txt"  # a run's held-out images of a one-pool dataset, one file a line
HELD_OUT_SPLIT = "held-out"  # the name of what is left of a pool (or a training split) to measure on


def image_hashes(images: np.ndarray) -> np.ndarray:
    """(N,) uint64: a 64-bit BLAKE2b of each image's pixels ((N, 48, 48) or (N, 48, 48, 1) uint8).
    Exact content, not a perceptual hash: two different faces never share one by chance (a
    difference hash would join look-alikes; `data.groups` uses that one to warn, not to drop)."""
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in flat)
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


_dataset_hashes: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def dataset_hashes(dataset: Dataset) -> np.ndarray:
    """`image_hashes` of a dataset's images, computed once per loaded dataset: Evaluate asks on
    every rerun, for every chosen model (FER2013's 32,298 faces take 0.2 s to hash)."""
    key = id(dataset)
    found = _dataset_hashes.get(key)
    if found is not None and found[0]() is dataset:
        return found[1]
    hashes = image_hashes(dataset.images)
    _dataset_hashes[key] = (weakref.ref(dataset, lambda _gone, key=key: _dataset_hashes.pop(key, None)), hashes)
    return hashes


def write_seen(folder: str | Path, *image_arrays: np.ndarray) -> np.ndarray:
    """Record the images a run trained and selected on in `folder`/seen_images.npy; returns the hashes."""
    hashes = np.unique(np.concatenate([image_hashes(images) for images in image_arrays]))
    buffer = io.BytesIO()
    np.save(buffer, hashes, allow_pickle=False)
    write_atomic(Path(folder) / SEEN_FILE, lambda tmp: tmp.write_bytes(buffer.getvalue()))
    return hashes


def read_seen(folder: Path | None) -> np.ndarray | None:
    """A model folder's recorded hashes, or None where it has none (a bare file, an older run)."""
    if folder is None or not (Path(folder) / SEEN_FILE).is_file():
        return None
    try:
        return np.load(Path(folder) / SEEN_FILE, allow_pickle=False).astype(np.uint64)
    except (OSError, ValueError) as exc:
        raise FerError(
            f"{Path(folder) / SEEN_FILE}: unreadable ({exc}); it lists the faces the model learned"
        ) from None


def _seen_by_path(ref, dataset: Dataset) -> np.ndarray:
    """For a model without seen_images.npy: which of `dataset`'s images it learned, known only where
    its config names this very dataset (all but held_out.txt, else the training split, else all)."""
    data = (ref.config or {}).get("data")
    if not data or not dataset.root or Path(str(data)).resolve() != Path(dataset.root).resolve():
        return np.zeros(len(dataset), dtype=bool)
    held_file = ref.folder / HELD_OUT_FILE if ref.folder is not None else None
    if held_file is not None and held_file.is_file():
        held = {line.strip() for line in held_file.read_text(encoding="utf-8").splitlines() if line.strip()}
        return ~np.isin(dataset.sources.astype(str), list(held))
    training = default_training_split(dataset)
    return dataset.splits == training if training else np.ones(len(dataset), dtype=bool)


def leave_out_seen(dataset: Dataset, split: str | None, seen: np.ndarray, who: str = "the model"):
    """(view, split, left out, of): `split`'s images (None: the default evaluation split, else
    all) less every one whose pixels are in `seen`, and how many of how many were left out."""
    return _without(dataset, split, np.isin(dataset_hashes(dataset), seen), who)[:4]


def _without(dataset: Dataset, split: str | None, learned: np.ndarray, who: str):
    """The split less the `learned` images, named HELD_OUT_SPLIT when it was a training split or
    a pool (the dataset's one split, or all of it), else it keeps its name; unchanged when none
    was learned.

    Raises:
        FerError: every image of the split was learned.
    """
    chosen = dataset.split_name(split) if split is not None else default_evaluation_split(dataset)
    in_split = dataset.splits == chosen if chosen is not None else np.ones(len(dataset), dtype=bool)
    removed, total = int((learned & in_split).sum()), int(in_split.sum())
    if not removed:
        return dataset, split, 0, total, chosen
    if removed == total:
        raise FerError(
            f"{who} trained or selected on all {total:,} images of {chosen or 'this dataset'} (recognised by their "
            "pixels, whatever their path or copy): measuring there would count faces it learned; choose images it "
            "never saw"
        )
    pool = chosen is None or len(dataset.split_names) == 1 or chosen == default_training_split(dataset)
    name = HELD_OUT_SPLIT if pool else chosen
    view = dataset.subset(in_split & ~learned)
    return dataclasses.replace(view, splits=np.full(len(view), name)), name, removed, total, chosen


def unseen_by(refs, dataset: Dataset, split: str | None) -> tuple[Dataset, str | None, str | None]:
    """(dataset, split, note): what to measure a model (a ModelRef), or the ensemble of several,
    on: `split` less every image any of them trained or selected on, recognised by its pixels
    (or, for older records, by the data path). The note says how many were left out (None when
    none was).

    Raises:
        FerError: every image of the split is one they learned.
    """
    refs = list(refs) if isinstance(refs, (list, tuple)) else [refs]
    learned = np.zeros(len(dataset), dtype=bool)
    for ref in refs:
        seen = read_seen(ref.folder)
        if seen is not None:
            learned |= np.isin(dataset_hashes(dataset), seen)
        else:
            learned |= _seen_by_path(ref, dataset)
    one = len(refs) == 1
    who = refs[0].name if one else " + ".join(ref.name for ref in refs)
    view, name, removed, total, chosen = _without(dataset, split, learned, who)
    if not removed:
        return dataset, split, None
    note = (
        f"{who} measured on {'its' if one else 'their'} {total - removed:,} held-out images: {removed:,} of the "
        f"{total:,} images of {chosen or 'this dataset'} are faces {'it' if one else 'they'} trained or selected on "
        "(recognised by their pixels, whatever their path or copy), left out"
    )
    return view, name, note
