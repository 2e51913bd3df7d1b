"""A corrected copy of a dataset's labels: the label review's decisions (keep, relabel, exclude)
written as a labelled CSV (`label,path,group`) beside the dataset, naming the dataset's own image
files. The original files are never changed; the copy trains like any dataset."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from fer_core.errors import FerError
from fer_core.fileio import write_text_atomic

KEEP, EXCLUDE = "keep", "exclude"
# `<name>-corrected.csv`, then `<name>-corrected-2.csv` and on: the one naming rule, read back by
# the dataset store to list the copies and to move them with their folder.
_COPY_NAME = re.compile(r"(?P<original>.+)-corrected(-\d+)?\.csv")


def corrected_copy_of(path: str | Path) -> str | None:
    """The name of the dataset whose corrected copy `path` is (by its file name), else None."""
    named = _COPY_NAME.fullmatch(Path(path).name)
    return named["original"] if named else None


def corrected_copy_path(data: str | Path) -> Path:
    """Where the copy goes: beside the dataset folder (or CSV), `<name>-corrected.csv`, with a
    number added when that exists (an earlier copy is never overwritten)."""
    data = Path(data)
    stem = data.stem if data.is_file() else data.name
    candidate = data.parent / f"{stem}-corrected.csv"
    number = 2
    while candidate.exists():
        candidate = data.parent / f"{stem}-corrected-{number}.csv"
        number += 1
    return candidate


def write_corrected_copy(
    data: str | Path, images: list[tuple[str, str, str]], decisions: dict[str, str], classes
) -> Path:
    """Write the copy and return its path.

    Args:
        data: the dataset's folder (image paths are relative to it) or labelled CSV (relative to
            the CSV's folder).
        images: every image of the dataset as (path, given label, group).
        decisions: path -> KEEP, EXCLUDE or a class name to relabel it with; paths not named are kept.
        classes: the dataset's classes (a relabel must name one).

    Raises:
        FerError: images that are not files (a pixel CSV's rows), a decision for an unknown image
            or class, or nothing left.
    """
    data = Path(data)
    known = {path for path, _label, _group in images}
    unknown = sorted(set(decisions) - known)
    if unknown:
        raise FerError(f"decisions for images not in the dataset: {', '.join(unknown[:3])}")
    bad = sorted({d for d in decisions.values() if d not in (KEEP, EXCLUDE) and d not in classes})
    if bad:
        raise FerError(
            f"relabel to a class the dataset does not have: {', '.join(bad)} (classes: {', '.join(classes)})"
        )
    if any(path.startswith("csv row") for path in known):
        raise FerError(f"{data}: its images are CSV rows, not files: a corrected copy names image files")
    prefix = "" if data.is_file() else f"{data.name}/"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "path", "group"])
    kept = 0
    for path, label, group in images:
        decision = decisions.get(path, KEEP)
        if decision == EXCLUDE:
            continue
        writer.writerow([label if decision == KEEP else decision, prefix + path, group])
        kept += 1
    if not kept:
        raise FerError("every image is excluded: nothing to write")
    destination = corrected_copy_path(data)
    try:
        write_text_atomic(destination, buffer.getvalue())
    except OSError as exc:
        raise FerError(f"cannot write {destination}: {exc.strerror}") from None
    return destination
