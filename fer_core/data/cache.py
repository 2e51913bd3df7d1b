"""Decoded datasets cached as `.npz`, keyed by the source's paths, sizes and mtimes, so a second
load of the full dataset is a file read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fer_core.data.dataset import Dataset, LoadReport
from fer_core.fileio import write_atomic

CACHE_FORMAT = 2  # bump when the cached arrays' meaning changes


def write_cache(cache_file: Path, dataset: Dataset) -> None:
    """Write atomically; a cache that cannot be written is not an error, only slower next time."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(
            cache_file,
            lambda tmp: np.savez(
                tmp,
                images=dataset.images,
                labels=dataset.labels,
                splits=dataset.splits,
                sources=dataset.sources,
                report=np.array(json.dumps(dataset.report.to_dict())),
                classes=np.array(list(dataset.classes)),
                **({} if dataset.groups is None else {"groups": dataset.groups}),
            ),
        )
    except OSError:
        pass


def read_cache(cache_file: Path, root: str) -> Dataset | None:
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            return Dataset(
                images=z["images"],
                labels=z["labels"],
                splits=z["splits"],
                sources=z["sources"],
                root=root,
                report=LoadReport.from_dict(json.loads(str(z["report"]))),
                classes=tuple(str(c) for c in z["classes"]),
                groups=z["groups"] if "groups" in z.files else None,
            )
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a damaged cache is rebuilt
