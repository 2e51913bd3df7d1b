"""Datasets brought through the browser: a zip unpacked safely into `datasets_dir()/<name>/`, listed
by name, renamed, deleted. Every change is whole or not at all: a zip is unpacked into a hidden
staging folder, loaded once as a dataset to prove it is one, and only then renamed into place.

What a zip may hold: class folders (with or without train/val/test folders above them), or a
labelled CSV (`label,path[,split,group]`) with the images it names; one folder wrapping it all is
looked through. What it may not: a path outside its folder (absolute, `..`), a link, more than
MAX_FILES files or MAX_TOTAL_BYTES unpacked, a member that inflates more than MAX_RATIO times (a
zip bomb). Files that are neither images nor CSVs are skipped and named.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.data.images import IMAGE_EXTENSIONS, unsafe_archive_path
from fer_core.errors import FerError
from fer_core.paths import datasets_dir

MAX_FILES = 100_000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200  # a member's unpacked size over its compressed size; images barely compress
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STAGING_PREFIX = ".unpacking-"


@dataclass
class Unpacked:
    """What an upload became: its folder, the dataset path to load (the folder or its CSV), and
    the files skipped with why."""

    name: str
    folder: Path
    data: Path
    images: int
    skipped: dict[str, list[str]] = field(default_factory=dict)


def check_name(name: str) -> str:
    name = str(name).strip()
    if not NAME.match(name) or name.endswith(".zip"):
        raise FerError(
            f"dataset name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def list_datasets() -> dict[str, Path]:
    """name -> the path to load (the folder, or the labelled CSV inside it), sorted by name."""
    root = datasets_dir()
    if not root.is_dir():
        return {}
    found = {}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            found[folder.name] = _data_path(folder)
    return found


def _data_path(folder: Path) -> Path:
    csvs = sorted(folder.glob("*.csv"))
    return csvs[0] if len(csvs) == 1 else folder


def unpack_dataset(data: bytes, name: str) -> Unpacked:
    """Unpack an uploaded zip into a new dataset `name`.

    Raises:
        FerError: a bad name or one taken, not a zip, an unsafe or oversized archive, no images,
            or contents that do not load as a dataset (one class, say). Nothing is left behind.
    """
    from fer_core.data import load_dataset

    name = check_name(name)
    root = datasets_dir()
    final = root / name
    if final.exists():
        raise FerError(f"a dataset named {name!r} exists already: choose another name, or delete that one first")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FerError(f"not a readable zip archive ({' '.join(str(exc).split())[:120]})") from None
    _check_archive(entries)
    prefix = _common_folder([e.filename for e in entries])
    wanted = IMAGE_EXTENSIONS + (".csv",)
    skipped: dict[str, list[str]] = {}
    keep = []
    for entry in entries:
        relative = entry.filename[len(prefix) :]
        if not relative or relative.split("/")[-1].startswith(".") or "__MACOSX" in entry.filename:
            continue
        if not relative.lower().endswith(wanted):
            skipped.setdefault("files that are neither images nor a CSV", []).append(entry.filename)
            continue
        keep.append((entry, relative))
    images = sum(1 for _entry, relative in keep if relative.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise FerError("the archive holds no images (class folders of .jpg/.png, or a CSV with its images)")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        for entry, relative in keep:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry) as source, open(target, "wb") as sink:
                _copy_bounded(source, sink, entry)
        try:
            dataset = load_dataset(str(_data_path(staging)), use_cache=False)
        except FerError as exc:
            raise FerError(str(exc).replace(f"{staging}/", "").replace(str(staging), "the archive")) from None
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Unpacked(name, final, _data_path(final), len(dataset), {**skipped, **dataset.report.skipped})


def _check_archive(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_FILES:
        raise FerError(f"the archive holds {len(entries):,} files, over the {MAX_FILES:,} limit")
    total = 0
    for entry in entries:
        if unsafe_archive_path(entry.filename):
            raise FerError(f"{entry.filename}: refused: the path leads outside the dataset's folder")
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise FerError(f"{entry.filename}: refused: links are not unpacked")
        if entry.file_size > MAX_RATIO * max(entry.compress_size, 1) and entry.file_size > 1024**2:
            raise FerError(
                f"{entry.filename}: refused: it unpacks {entry.file_size / max(entry.compress_size, 1):.0f} times its "
                f"packed size (a zip bomb?); the limit is {MAX_RATIO}"
            )
        total += entry.file_size
        if total > MAX_TOTAL_BYTES:
            raise FerError(f"the archive unpacks to over {MAX_TOTAL_BYTES / 1024**3:.0f} GiB, the limit")


def _copy_bounded(source, sink, entry: zipfile.ZipInfo) -> None:
    """Copy a member, refusing one that inflates past the size its header declared (headers lie)."""
    written = 0
    while chunk := source.read(1 << 20):
        written += len(chunk)
        if written > entry.file_size:
            raise FerError(f"{entry.filename}: refused: it unpacks past the size its header declares")
        sink.write(chunk)


def _common_folder(names: list[str]) -> str:
    """'top/' when every member lies in one folder `top` that is not itself a class folder (a zip
    of the dataset's folder), else ''."""
    names = [name for name in names if not name.startswith("__MACOSX/")]
    tops = {name.split("/")[0] for name in names}
    if len(tops) != 1 or not all("/" in name for name in names):
        return ""
    direct = [name for name in names if name.count("/") == 1]
    if direct and all(name.lower().endswith(IMAGE_EXTENSIONS) for name in direct):
        return ""  # images right under it: `top` is a class
    return f"{tops.pop()}/"


def rename_dataset(name: str, new_name: str) -> Path:
    """Raises: FerError: no such dataset, a bad new name, or one taken."""
    old, new = datasets_dir() / check_name(name), datasets_dir() / check_name(new_name)
    if not old.is_dir():
        raise FerError(f"no dataset named {name!r}")
    if new.exists():
        raise FerError(f"a dataset named {new_name!r} exists already")
    old.rename(new)
    return new


def delete_dataset(name: str) -> None:
    """Raises: FerError: no such dataset."""
    folder = datasets_dir() / check_name(name)
    if not folder.is_dir():
        raise FerError(f"no dataset named {name!r}")
    # Renamed first, so a delete cut short leaves a hidden folder, never half a dataset under its name.
    doomed = folder.with_name(f".deleting-{folder.name}")
    folder.rename(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
