"""`load_dataset(path)`, the only loader (a folder or the Kaggle CSV, cached), and `split_counts`."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

from fer_core.data import cache as _cache
from fer_core.data import folder as _folder
from fer_core.data import kaggle_csv as _csv
from fer_core.data.dataset import CANONICAL_SPLIT, SPLIT_PREFIX, Dataset, ProgressCallback
from fer_core.errors import FerError
from fer_core.paths import cache_dir


def load_dataset(
    path: str | os.PathLike,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
    find_face=None,
) -> Dataset:
    """Load a dataset (FER2013 or one with its own classes) from an image folder or a CSV file.

    Args:
        path: the folder (`train/`, `test/`, ... inside, or class folders directly) or the CSV.
        use_cache: read and write the `.npz` cache in `cache_dir()`.
        progress: called as `progress(done, total)` while images are decoded.
        find_face: for photos that are not face crops, `find_face(file bytes, name)` -> the 48x48
            face (raising `NoFace` where there is none: the image is skipped, named in the report);
            `fer_core.inference.faces.dataset_face_finder()` makes one. Image files only.

    Returns:
        The dataset; `dataset.report` lists what was converted or skipped.

    Raises:
        FerError: missing path, nothing loadable, or a CSV without the needed columns.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise FerError(f"dataset path does not exist: {source}")
    if source.is_dir():
        files = _folder.scan_folder(source)
        key_parts = [f"{rel}\t{size}\t{mtime}" for rel, size, mtime, *_ in files]
    elif source.is_file():
        stat = source.stat()
        files = None
        key_parts = [f"{source.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"]
    else:
        raise FerError(f"dataset path is neither a folder nor a file: {source}")

    detect = [f"faces:{getattr(find_face, 'name', 'detector')}"] if find_face is not None else []
    key_text = "\n".join([f"v{_cache.CACHE_FORMAT}", str(source.resolve()), *detect, *key_parts])
    key = hashlib.sha1(key_text.encode()).hexdigest()[:20]
    cache_file = cache_dir() / f"fer-{key}.npz"
    if use_cache and cache_file.exists():
        cached = _cache.read_cache(cache_file, str(source))
        if cached is not None:
            if progress:
                progress(len(cached), len(cached))
            return cached

    if files is not None:
        dataset = _folder.load_folder(source, files, progress, find_face)
    else:
        dataset = _csv.load_csv(source, progress, find_face=find_face)
    if use_cache:
        _cache.write_cache(cache_file, dataset)
    return dataset


def split_counts(path: str | os.PathLike) -> dict[str, int]:
    """Images per split, counted without decoding any (file names for a folder, the Usage column
    for a CSV): what a run's length is estimated from before the data is loaded. Images that the
    loader would skip (unknown class folders, bad rows) may be counted.

    Raises:
        FerError: the path does not exist.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise FerError(f"dataset path does not exist: {source}")
    counts: dict[str, int] = {}
    if source.is_dir():
        files = _folder.scan_folder(source)
        own_classes = _folder.folder_classes(files)
        for rel, _size, _mtime, split_folder, class_folder in files:
            if not class_folder:
                continue
            match = SPLIT_PREFIX.match(Path(rel).name)
            split = CANONICAL_SPLIT[match.group(1).lower()] if match else split_folder
            if own_classes and Path(rel).parent == Path(class_folder):
                split = "all"
            counts[split] = counts.get(split, 0) + 1
        return counts
    with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        usage = header.index("usage") if "usage" in header else None
        for row in reader:
            if not row:
                continue
            split = row[usage].strip() if usage is not None and len(row) > usage else "all"
            split = CANONICAL_SPLIT.get(split.lower(), split)
            counts[split] = counts.get(split, 0) + 1
    return counts
