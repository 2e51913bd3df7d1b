"""The Kaggle CSV `emotion,pixels,Usage` (also with ` pixels`/` Usage` headers, a BOM or CRLF)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from fer_core import CLASS_NAMES, FER_SPLITS, IMAGE_SIZE
from fer_core.data.dataset import CANONICAL_SPLIT, Dataset, LoadReport, ProgressCallback
from fer_core.errors import FerError

PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE


def load_csv(path: Path, progress: ProgressCallback | None, find_face=None) -> Dataset:
    report = LoadReport()
    try:
        # utf-8-sig drops a BOM; newline="" lets csv handle CRLF line ends.
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        raise FerError(f"{path}: not a text CSV file (it is not UTF-8)") from None
    except OSError as exc:
        raise FerError(f"{path}: cannot be read ({exc.strerror})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise FerError(f"{path}: the CSV is empty")
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    from fer_core.data.labelled_csv import is_labelled_csv, load_labelled_csv

    if is_labelled_csv(header) and "emotion" not in columns:
        return load_labelled_csv(path, text, progress, find_face=find_face)
    missing = [c for c in ("emotion", "pixels") if c not in columns]
    if missing:
        raise FerError(
            f"{path}: the CSV needs the columns emotion,pixels[,Usage] (FER2013) or label,path or "
            f"label,pixels[,split][,group]. Received: {','.join(h.strip() for h in header)}"
        )
    i_label, i_pixels, i_usage = columns["emotion"], columns["pixels"], columns.get("usage")

    images, labels, splits, sources = [], [], [], []
    rows = list(reader)
    for row_number, row in enumerate(rows, start=2):  # row 1 is the header
        where = f"row {row_number}"
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) <= max(i_label, i_pixels, i_usage or 0):
            report.skip("rows with missing columns", where)
            continue
        label_text = row[i_label].strip()
        if not label_text.lstrip("-").isdigit():
            report.skip("rows with a non-numeric label", where)
            continue
        label = int(label_text)
        if not 0 <= label < len(CLASS_NAMES):
            report.skip(f"rows with a label outside 0..{len(CLASS_NAMES) - 1}", where)
            continue
        if i_usage is not None:
            usage = CANONICAL_SPLIT.get(row[i_usage].strip().lower())
            if usage is None:
                report.skip(f"rows with an unknown Usage (expected {', '.join(FER_SPLITS)})", where)
                continue
        else:
            usage = "all"
        tokens = row[i_pixels].split()
        if len(tokens) != PIXELS_PER_IMAGE:
            report.skip(f"rows with the wrong pixel count (expected {PIXELS_PER_IMAGE})", f"{where} ({len(tokens)})")
            continue
        try:
            values = np.array(tokens, dtype=np.int64)
        except ValueError:
            report.skip("rows with non-numeric pixels", where)
            continue
        if values.min() < 0 or values.max() > 255:
            report.skip("rows with pixel values outside 0..255", where)
            continue
        images.append(values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
        labels.append(label)
        splits.append(usage)
        sources.append(f"csv {where}")
        if progress and len(images) % 1024 == 0:
            progress(row_number - 1, len(rows))
    if progress:
        progress(len(rows), len(rows))
    if not images:
        detail = "; ".join(report.messages()) or "the file has no data rows"
        raise FerError(f"{path}: no usable rows ({detail})")
    return Dataset(
        images=np.stack(images),
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits, dtype=str),
        sources=np.array(sources, dtype=str),
        classes=CLASS_NAMES,  # the Kaggle CSV's labels are FER2013's indices
        root=str(path),
        report=report,
    )
