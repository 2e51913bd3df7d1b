"""A study's answer: the share of each class among the faces of each group (participant,
condition, ...), with a 95% interval from resampling files, not faces: one long video holds
thousands of faces of one person, and resampling those would look certain about a single file."""

from __future__ import annotations

import os

import numpy as np

from fer_core.errors import FerError

RESAMPLES = 2000


def summary(out: str | os.PathLike, by: list[str] | None = None, seed: int = 0):
    """A row per group and class (pandas): the group's columns, `class`, `share` (of the group's
    faces), `low` and `high` (the 95% percentile interval over files resampled with replacement
    within the group), `files` and `faces`.

    Raises:
        FerError: a `by` column the job's inputs do not have, or a job with no faces.
    """
    import pandas as pd

    from fer_core.batch.job import read_job
    from fer_core.batch.store import load, load_files

    by = list(by or [])
    record = read_job(out)
    classes = list(record.get("model", {}).get("classes") or [])
    files = load_files(out)
    files = files[files["status"] == "done"]
    missing = [column for column in by if column not in files.columns]
    if missing:
        known = [c for c in files.columns if c not in {"source", "kind", "status", "error", *classes}]
        raise FerError(f"no column {', '.join(missing)} in the job's inputs (a manifest's columns: {known})")
    faces = load(out, columns=["source", "label"])
    if faces.empty:
        raise FerError(f"{out}: the job has no faces yet")
    counts = pd.crosstab(faces["source"], faces["label"]).reindex(columns=classes, fill_value=0)
    files = files[files["source"].isin(counts.index)]
    groups = files.groupby(by, sort=True) if by else [((), files)]
    rng = np.random.default_rng(seed)
    rows = []
    for key, members in groups:
        key = key if isinstance(key, tuple) else (key,)
        matrix = counts.loc[members["source"]].to_numpy(dtype=np.float64)  # files x classes
        totals = matrix.sum(axis=0)
        share = totals / totals.sum()
        picks = rng.integers(0, len(matrix), size=(RESAMPLES, len(matrix)))
        resampled = matrix[picks].sum(axis=1)
        resampled = resampled / np.maximum(resampled.sum(axis=1, keepdims=True), 1)
        low, high = np.percentile(resampled, [2.5, 97.5], axis=0)
        for k, name in enumerate(classes):
            rows.append(
                {
                    **dict(zip(by, key)),
                    "class": name,
                    "share": float(share[k]),
                    "low": float(low[k]),
                    "high": float(high[k]),
                    "files": len(matrix),
                    "faces": int(totals.sum()),
                }
            )
    return pd.DataFrame(rows, columns=[*by, "class", "share", "low", "high", "files", "faces"])
