"""A CSV of labelled faces with the dataset's own classes: `label,path` (image files relative to the
CSV) or `label,pixels` (48x48 space-separated gray values), with optional `split` and `group`
columns. The classes are the labels found, in natural order (the Kaggle FER2013 CSV, `emotion,
pixels,Usage`, is read by kaggle_csv as before)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.data.dataset import Dataset, LoadReport, ProgressCallback
from fer_core.errors import FerError

PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE


def is_labelled_csv(header: list[str]) -> bool:
    names = {h.strip().lower() for h in header}
    return "label" in names and ("path" in names or "pixels" in names)


def load_labelled_csv(path: Path, text: str, progress: ProgressCallback | None, find_face=None) -> Dataset:
    from fer_core.data.folder import NoFace, _natural_key, decode_face

    report = LoadReport()
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader)]
    column = {name: i for i, name in enumerate(header)}
    i_label, i_path, i_pixels = column["label"], column.get("path"), column.get("pixels")
    i_split, i_group = column.get("split"), column.get("group")
    rows = [(n, row) for n, row in enumerate(reader, start=2) if row and any(cell.strip() for cell in row)]
    images, labels, splits, sources, groups = [], [], [], [], []
    for done, (row_number, row) in enumerate(rows, start=1):
        where = f"row {row_number}"
        needed = max(i for i in (i_label, i_path, i_pixels, i_split, i_group) if i is not None)
        if len(row) <= needed:
            report.skip("rows with missing columns", where)
            continue
        label = row[i_label].strip()
        if not label:
            report.skip("rows without a label", where)
            continue
        try:
            if i_path is not None:
                relative = row[i_path].strip()
                file = (path.parent / relative).resolve()
                if not relative or not file.is_relative_to(path.parent.resolve()):
                    raise FerError(f"{relative or '(empty)'}: paths must stay inside the CSV's folder")
                try:
                    face, conversions = decode_face(file.read_bytes(), relative, find_face)
                except NoFace:
                    report.skip("images with no face found (--detect-faces)", relative)
                    continue
                for what in conversions:
                    report.convert(what)
                source = relative
            else:
                tokens = row[i_pixels].split()
                if len(tokens) != PIXELS_PER_IMAGE:
                    raise FerError(f"wrong pixel count ({len(tokens)}, expected {PIXELS_PER_IMAGE})")
                values = np.array(tokens, dtype=np.int64)
                if values.min() < 0 or values.max() > 255:
                    raise FerError("pixel values outside 0..255")
                face, source = values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE), f"csv {where}"
        except (FerError, OSError, ValueError) as exc:
            report.skip("rows whose image cannot be read", f"{where} ({_short(exc)})")
            continue
        images.append(face)
        labels.append(label)
        splits.append(row[i_split].strip() if i_split is not None and row[i_split].strip() else "all")
        sources.append(source)
        groups.append(row[i_group].strip() if i_group is not None else "")
        if progress and done % 512 == 0:
            progress(done, len(rows))
    if progress:
        progress(len(rows), len(rows))
    if not images:
        detail = "; ".join(report.messages()) or "the file has no data rows"
        raise FerError(f"{path}: no usable rows ({detail})")
    classes = tuple(sorted(set(labels), key=_natural_key))
    if len(classes) < 2:
        raise FerError(f"{path}: only one class ({classes[0]}); a classifier needs two or more labels")
    index = {name: k for k, name in enumerate(classes)}
    return Dataset(
        images=np.stack(images),
        labels=np.array([index[label] for label in labels], dtype=np.int64),
        splits=np.array(splits, dtype=str),
        sources=np.array(sources, dtype=str),
        root=str(path),
        report=report,
        classes=classes,
        groups=np.array(groups, dtype=str) if i_group is not None else None,
    )


def _short(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc))[:120]
