"""FER2013 in its folder and CSV forms, loaded into one in-memory `Dataset`.

`load_dataset(path)` is the only loader. It accepts:
- the image-folder layout `ROOT/<split>/<class>/*.jpg` (or `ROOT/<class>/*.jpg`): the split is told
  by the file-name prefixes `Training_`, `PublicTest_`, `PrivateTest_` when present, else by the
  split folder's name;
- the Kaggle CSV `emotion,pixels,Usage` (also with ` pixels`/` Usage` headers, a BOM or CRLF).

Decoded arrays are cached as `.npz`, keyed by the source's paths, sizes and mtimes, so a second
load of the full dataset is a file read.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fer_core import CLASS_NAMES, FER_SPLITS, IMAGE_SIZE
from fer_core.errors import FerError
from fer_core.fileio import write_atomic
from fer_core.images import IMAGE_EXTENSIONS, decode_grayscale
from fer_core.paths import cache_dir

CACHE_FORMAT = 1  # bump when the cached arrays' meaning changes
PIXELS_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE
_SPLIT_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)
_CANONICAL_SPLIT = {s.lower(): s for s in FER_SPLITS}

# Folder names seen in FER2013 re-distributions, mapped onto FER2013's label order.
CLASS_ALIASES: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
CLASS_ALIASES.update({"anger": 0, "disgusted": 1, "fearful": 2, "happiness": 3, "sadness": 4, "surprised": 5})

ProgressCallback = Callable[[int, int], None]


@dataclass
class LoadReport:
    """What the loader had to convert or skip, told so a user can find the files or rows."""

    converted: dict[str, int] = field(default_factory=dict)  # e.g. {"colour to grayscale": 3}
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> files/rows
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped.setdefault(reason, []).append(where)

    def convert(self, what: str) -> None:
        self.converted[what] = self.converted.get(what, 0) + 1

    def messages(self, show: int = 3) -> list[str]:
        """One line per kind of problem, naming at most `show` files or rows, then a count."""
        lines = list(self.warnings)
        for reason, where in self.skipped.items():
            named = ", ".join(where[:show])
            more = f" and {len(where) - show} more" if len(where) > show else ""
            lines.append(f"skipped {len(where)} {reason}: {named}{more}")
        for what, count in self.converted.items():
            lines.append(f"converted {count} images ({what})")
        return lines

    def to_dict(self) -> dict:
        return {"converted": self.converted, "skipped": self.skipped, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict) -> "LoadReport":
        return cls(dict(d["converted"]), {k: list(v) for k, v in d["skipped"].items()}, list(d["warnings"]))


@dataclass
class Dataset:
    """FER images in a fixed order: `images[i]` (48x48 uint8), `labels[i]`, `splits[i]`, `sources[i]`."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, FER2013 order
    splits: np.ndarray  # (N,) str
    sources: np.ndarray  # (N,) str: relative file path or "csv row K"
    root: str = ""
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def split_names(self) -> list[str]:
        present = set(self.splits.tolist())
        ordered = [s for s in FER_SPLITS if s in present]
        return ordered + sorted(present - set(ordered))

    def subset(self, mask_or_index: np.ndarray) -> "Dataset":
        return Dataset(
            self.images[mask_or_index],
            self.labels[mask_or_index],
            self.splits[mask_or_index],
            self.sources[mask_or_index],
            self.root,
            self.report,
        )

    def split_name(self, name: str) -> str:
        """The split as this dataset spells it, matched without regard to case (`publictest` is
        PublicTest); refuses an unknown name with the valid ones."""
        if name in self.split_names:
            return name
        matches = [s for s in self.split_names if s.lower() == str(name).strip().lower()]
        if len(matches) != 1:
            raise FerError(f"no split named {name!r} in {self.root}; splits: {', '.join(self.split_names)}")
        return matches[0]

    def split(self, name: str) -> "Dataset":
        """The images of one split (see split_name)."""
        return self.subset(self.splits == self.split_name(name))

    def head(self, n: int | None) -> "Dataset":
        """The first `n` images of each split (all when n is None): for quick trials."""
        if n is None:
            return self
        if n <= 0:
            raise FerError(f"limit must be a positive number of images per split. Received: limit={n}")
        keep = np.zeros(len(self), dtype=bool)
        for name in self.split_names:
            keep[np.flatnonzero(self.splits == name)[:n]] = True
        return self.subset(keep)


def default_training_split(dataset: Dataset) -> str | None:
    """Training, else train, else None (meaning: all images)."""
    for name in ("Training", "train"):
        if name in dataset.split_names:
            return name
    return None


def default_evaluation_split(dataset: Dataset) -> str | None:
    """PrivateTest if present, else PublicTest, else test, else None (all images)."""
    for name in ("PrivateTest", "PublicTest", "test"):
        if name in dataset.split_names:
            return name
    return None


def load_dataset(
    path: str | os.PathLike,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Load FER2013 from an image folder or a CSV file.

    Args:
        path: the folder (`train/`, `test/`, ... inside, or class folders directly) or the CSV.
        use_cache: read and write the `.npz` cache in `cache_dir()`.
        progress: called as `progress(done, total)` while images are decoded.

    Returns:
        The dataset; `dataset.report` lists what was converted or skipped.

    Raises:
        FerError: missing path, nothing loadable, or a CSV without the needed columns.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise FerError(f"dataset path does not exist: {source}")
    if source.is_dir():
        files = _scan_folder(source)
        key_parts = [f"{rel}\t{size}\t{mtime}" for rel, size, mtime, *_ in files]
    elif source.is_file():
        stat = source.stat()
        files = None
        key_parts = [f"{source.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"]
    else:
        raise FerError(f"dataset path is neither a folder nor a file: {source}")

    key = hashlib.sha1("\n".join([f"v{CACHE_FORMAT}", str(source.resolve()), *key_parts]).encode()).hexdigest()[:20]
    cache_file = cache_dir() / f"fer-{key}.npz"
    if use_cache and cache_file.exists():
        cached = _read_cache(cache_file, str(source))
        if cached is not None:
            if progress:
                progress(len(cached), len(cached))
            return cached

    if files is not None:
        dataset = _load_folder(source, files, progress)
    else:
        dataset = _load_csv(source, progress)
    if use_cache:
        _write_cache(cache_file, dataset)
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
        for rel, _size, _mtime, split_folder, class_folder in _scan_folder(source):
            if CLASS_ALIASES.get(class_folder.lower()) is None:
                continue
            match = _SPLIT_PREFIX.match(Path(rel).name)
            split = _CANONICAL_SPLIT[match.group(1).lower()] if match else split_folder
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
            split = _CANONICAL_SPLIT.get(split.lower(), split)
            counts[split] = counts.get(split, 0) + 1
    return counts


# ---- image folders ---------------------------------------------------------------------------


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def _scan_folder(root: Path) -> list[tuple[str, int, int, str, str]]:
    """All image files under root as (relpath, size, mtime_ns, split_folder, class_folder)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            full = Path(dirpath) / name
            try:
                stat = full.stat()
            except OSError:
                continue
            parts = rel_dir.parts
            class_folder = parts[-1] if parts else ""
            split_folder = parts[-2] if len(parts) >= 2 else root.name
            found.append((str(rel_dir / name), stat.st_size, stat.st_mtime_ns, split_folder, class_folder))
    found.sort(key=lambda f: f[0])
    return found


def _load_folder(root: Path, files: list, progress: ProgressCallback | None) -> Dataset:
    report = LoadReport()
    if not files:
        raise FerError(f"no images found under {root} (expected train/<class>/*.jpg or <class>/*.jpg)")

    # Class folders that exist but hold no images are worth a warning: a partial copy, usually.
    _warn_empty_class_folders(root, report)

    usable = []
    unknown_classes: set[str] = set()
    for rel, _size, _mtime, split_folder, class_folder in files:
        label = CLASS_ALIASES.get(class_folder.lower())
        if label is None:
            unknown_classes.add(class_folder or "(top level)")
            report.skip("images in folders that are not FER2013 classes", rel)
            continue
        match = _SPLIT_PREFIX.match(Path(rel).name)
        split = _CANONICAL_SPLIT[match.group(1).lower()] if match else split_folder
        usable.append((rel, label, split))
    if unknown_classes:
        report.warnings.append(
            f"folders not named after a FER2013 class were ignored: {', '.join(sorted(unknown_classes)[:5])}"
            f" (class folders must be one of: {', '.join(CLASS_NAMES)})"
        )
    if not usable:
        raise FerError(f"no class folders under {root}: expected folders named {', '.join(CLASS_NAMES)}")

    # Fixed order: by split, then by file name in natural order (interleaves the classes, so a
    # --limit head of a split holds every class).
    split_rank = {s: i for i, s in enumerate(FER_SPLITS)}
    usable.sort(key=lambda u: (split_rank.get(u[2], len(FER_SPLITS)), u[2], _natural_key(Path(u[0]).name), u[0]))

    images = np.zeros((len(usable), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok = np.zeros(len(usable), dtype=bool)
    notes: list[tuple[int, str | None, list[str]]] = []

    def decode(index: int) -> tuple[int, str | None, list[str]]:
        rel = usable[index][0]
        try:
            face, conversions = _decode_face((root / rel).read_bytes(), rel)
        except FerError as exc:
            return index, str(exc), []
        except OSError as exc:
            return index, f"{rel}: cannot be read ({exc.strerror})", []
        images[index] = face
        ok[index] = True
        return index, None, conversions

    # cv2 and PIL release the GIL while decoding, so threads use both cores.
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(decode, range(len(usable)), chunksize=256), start=1):
            notes.append(result)
            if progress and (done % 512 == 0 or done == len(usable)):
                progress(done, len(usable))
    for index, error, conversions in notes:
        if error:
            report.skip("unreadable or corrupt images", usable[index][0])
        for what in conversions:
            report.convert(what)

    if not ok.any():
        raise FerError(f"none of the {len(usable)} images under {root} could be decoded")
    keep = np.flatnonzero(ok)
    return Dataset(
        images=images[keep],
        labels=np.array([usable[i][1] for i in keep], dtype=np.int64),
        splits=np.array([usable[i][2] for i in keep], dtype=str),
        sources=np.array([usable[i][0] for i in keep], dtype=str),
        root=str(root),
        report=report,
    )


def _warn_empty_class_folders(root: Path, report: LoadReport) -> None:
    candidates = [root] + [p for p in sorted(root.iterdir()) if p.is_dir()]
    for folder in candidates:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if sub.name.lower() in CLASS_ALIASES and not any(
                f.name.lower().endswith(IMAGE_EXTENSIONS) for f in sub.iterdir() if f.is_file()
            ):
                report.warnings.append(f"class folder {sub.relative_to(root)} holds no images")


def _decode_face(data: bytes, name: str) -> tuple[np.ndarray, list[str]]:
    """Decode one dataset image to 48x48 uint8, saying which conversions it needed."""
    import cv2

    conversions = []
    buffer = np.frombuffer(data, dtype=np.uint8)
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if pixels is not None and pixels.dtype == np.uint8 and pixels.ndim in (2, 3):
        if pixels.ndim == 3:
            code = cv2.COLOR_BGRA2GRAY if pixels.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            pixels = cv2.cvtColor(pixels, code) if pixels.shape[2] in (3, 4) else pixels[..., 0]
            conversions.append("colour to grayscale")
    else:
        # Anything cv2 cannot (GIF, 16-bit, palette...) goes through the careful decoder,
        # which also produces the error message for truly broken files.
        pixels = decode_grayscale(data, name=name)
        conversions.append("decoded by the fallback decoder")
    if pixels.shape != (IMAGE_SIZE, IMAGE_SIZE):
        pixels = cv2.resize(pixels, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        conversions.append(f"resized to {IMAGE_SIZE}x{IMAGE_SIZE}")
    return np.ascontiguousarray(pixels, dtype=np.uint8), conversions


# ---- the Kaggle CSV --------------------------------------------------------------------------


def _load_csv(path: Path, progress: ProgressCallback | None) -> Dataset:
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
    missing = [c for c in ("emotion", "pixels") if c not in columns]
    if missing:
        raise FerError(
            f"{path}: the CSV needs the columns emotion,pixels[,Usage]. Received: {','.join(h.strip() for h in header)}"
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
            usage = _CANONICAL_SPLIT.get(row[i_usage].strip().lower())
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
        root=str(path),
        report=report,
    )


# ---- cache -----------------------------------------------------------------------------------


def _write_cache(cache_file: Path, dataset: Dataset) -> None:
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
            ),
        )
    except OSError:
        pass


def _read_cache(cache_file: Path, root: str) -> Dataset | None:
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            return Dataset(
                images=z["images"],
                labels=z["labels"],
                splits=z["splits"],
                sources=z["sources"],
                root=root,
                report=LoadReport.from_dict(json.loads(str(z["report"]))),
            )
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a damaged cache is rebuilt
