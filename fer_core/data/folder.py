"""The image-folder layout: `ROOT/<split>/<class>/*.jpg` (or `ROOT/<class>/*.jpg`), the split told by
the file-name prefixes `Training_`, `PublicTest_`, `PrivateTest_` when present, else by the split
folder's name."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fer_core import CLASS_NAMES, FER_SPLITS, IMAGE_SIZE
from fer_core.data.dataset import CANONICAL_SPLIT, CLASS_ALIASES, SPLIT_PREFIX, Dataset, LoadReport, ProgressCallback
from fer_core.data.images import IMAGE_EXTENSIONS, decode_grayscale
from fer_core.errors import FerError


def _natural_key(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name))


def scan_folder(root: Path) -> list[tuple[str, int, int, str, str]]:
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


class NoFace(FerError):
    """An image in which a dataset's face finder found no face."""


def load_folder(root: Path, files: list, progress: ProgressCallback | None, find_face=None) -> Dataset:
    report = LoadReport()
    if not files:
        raise FerError(f"no images found under {root} (expected train/<class>/*.jpg or <class>/*.jpg)")

    # Class folders that exist but hold no images are worth a warning: a partial copy, usually.
    _warn_empty_class_folders(root, report)

    usable, classes = _labelled_files(root, files, report)
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
            face, conversions = decode_face((root / rel).read_bytes(), rel, find_face)
        except NoFace:
            return index, NO_FACE, []
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
        if error == NO_FACE:
            report.skip("images with no face found (--detect-faces)", usable[index][0])
        elif error:
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
        classes=classes,
    )


def folder_classes(files: list) -> tuple[str, ...] | None:
    """The classes a folder's class subfolders name: None for FER2013 (every folder is one of
    its classes or their aliases: its own order applies), else the folder names in natural order."""
    names = {class_folder for _rel, _size, _mtime, _split, class_folder in files if class_folder}
    if not names or all(name.lower() in CLASS_ALIASES for name in names):
        return None
    return tuple(sorted(names, key=_natural_key))


def _labelled_files(root: Path, files: list, report: LoadReport) -> tuple[list, tuple[str, ...]]:
    """(relative path, label, split) per usable file, and the dataset's classes."""
    own = folder_classes(files)
    usable, outside = [], []
    for rel, _size, _mtime, split_folder, class_folder in files:
        if not class_folder:
            outside.append(rel)
            continue
        label = own.index(class_folder) if own else CLASS_ALIASES[class_folder.lower()]
        match = SPLIT_PREFIX.match(Path(rel).name)
        split = CANONICAL_SPLIT[match.group(1).lower()] if match else split_folder
        if own and split_folder == root.name and Path(rel).parent == Path(class_folder):
            split = "all"  # ROOT/<class>/*: one pool, split by the command that uses it
        usable.append((rel, label, split))
    for rel in outside:
        report.skip("images outside a class folder", rel)
    if not usable:
        raise FerError(f"no class folders under {root}: expected <class>/*.jpg or <split>/<class>/*.jpg")
    classes = own or CLASS_NAMES
    present = {label for _rel, label, _split in usable}
    if own and len(present) < 2:  # (a FER2013 folder of one class still loads, as it always did)
        raise FerError(
            f"{root}: only one class ({classes[present.pop()]}); a classifier needs two or more class folders"
        )
    return usable, classes


def _warn_empty_class_folders(root: Path, report: LoadReport) -> None:
    candidates = [root] + [p for p in sorted(root.iterdir()) if p.is_dir()]
    for folder in candidates:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if sub.name.lower() in CLASS_ALIASES and not any(
                f.name.lower().endswith(IMAGE_EXTENSIONS) for f in sub.iterdir() if f.is_file()
            ):
                report.warnings.append(f"class folder {sub.relative_to(root)} holds no images")


NO_FACE = "no face"


def decode_face(data: bytes, name: str, find_face=None) -> tuple[np.ndarray, list[str]]:
    """One dataset image as a 48x48 face: the whole image (`_decode_face`), or with `find_face` the
    face it finds in a photo."""
    if find_face is None:
        return _decode_face(data, name)
    return find_face(data, name), ["face found and cropped"]


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
