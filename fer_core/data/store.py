"""Datasets brought through the browser: a zip unpacked safely into `datasets_dir()/<name>/`, listed
by name, renamed, deleted. Every change is whole or not at all: a zip is unpacked into a hidden
staging folder, loaded once as a dataset to prove it is one, and only then renamed into place.

What a zip may hold: class folders (with or without train/val/test folders above them), or a
labelled CSV (`label,path[,split,group]`) with the images it names; one folder wrapping it all is
looked through. What it may not: what `archives` refuses (paths outside, links, zip bombs, too
many files or bytes). Files that are neither images nor CSVs are skipped and named.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.data.archives import hidden, open_zip, single_top_folder, unpack_into
from fer_core.data.corrections import corrected_copy_of
from fer_core.data.images import IMAGE_EXTENSIONS
from fer_core.errors import FerError
from fer_core.fileio import write_text_atomic
from fer_core.paths import datasets_dir

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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
    """name -> the path to load, sorted by name: each folder (or the labelled CSV inside it), and
    each corrected copy the label review saved (`<name>-corrected.csv`, beside the folder or
    beside the CSV inside it) under its own name."""
    root = datasets_dir()
    if not root.is_dir():
        return {}
    found = {}
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found[entry.name] = _data_path(entry)
            found |= {f"{entry.name}/{copy.stem}": copy for copy in _corrected_copies(entry)}
        elif _is_corrected_copy(entry):
            found[entry.stem] = entry
    return dict(sorted(found.items()))


def dataset_folders() -> list[str]:
    """The names of the datasets that are folders of their own: what can be renamed or deleted
    (a corrected copy is a file beside its dataset, and goes with it)."""
    return [name for name in list_datasets() if "/" not in name and (datasets_dir() / name).is_dir()]


def _is_corrected_copy(path: Path) -> bool:
    """A labelled CSV the label review wrote (`fer_core.data.corrections.corrected_copy_path`)."""
    return path.is_file() and corrected_copy_of(path) is not None


def _corrected_copies(folder: Path) -> list[Path]:
    return [csv for csv in sorted(folder.glob("*.csv")) if _is_corrected_copy(csv)]


def _data_path(folder: Path) -> Path:
    """The folder's one labelled CSV (its corrected copies aside), else the folder itself."""
    csvs = [csv for csv in sorted(folder.glob("*.csv")) if not _is_corrected_copy(csv)]
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
    archive, entries = open_zip(data)
    prefix = _common_folder([e.filename for e in entries])
    wanted = IMAGE_EXTENSIONS + (".csv",)
    skipped: dict[str, list[str]] = {}
    keep = []
    for entry in entries:
        relative = entry.filename[len(prefix) :]
        if not relative or hidden(entry.filename):
            continue
        if not relative.lower().endswith(wanted):
            skipped.setdefault("files that are neither images nor a CSV", []).append(entry.filename)
            continue
        keep.append((entry, relative))
    images = sum(1 for _entry, relative in keep if relative.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise FerError("the archive holds no images (class folders of .jpg/.png, or a CSV with its images)")
    staging = unpack_into(archive, keep, root)
    try:
        try:
            dataset = load_dataset(str(_data_path(staging)), use_cache=False)
        except FerError as exc:
            raise FerError(str(exc).replace(f"{staging}/", "").replace(str(staging), "the archive")) from None
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Unpacked(name, final, _data_path(final), len(dataset), {**skipped, **dataset.report.skipped})


def _common_folder(names: list[str]) -> str:
    """'top/' when every member lies in one folder `top` that is not itself a class folder (a zip
    of the dataset's folder), else ''."""
    top = single_top_folder(names)
    direct = [name for name in names if top and name.startswith(top) and name.count("/") == 1]
    if direct and all(name.lower().endswith(IMAGE_EXTENSIONS) for name in direct):
        return ""  # images right under it: `top` is a class
    return top


def rename_dataset(name: str, new_name: str) -> Path:
    """The folder renamed, and its corrected copies beside it with it (they name its images
    through its name: `<name>/class/file.png`).

    Raises:
        FerError: no such dataset, a bad new name, or one taken.
    """
    old, new = datasets_dir() / check_name(name), datasets_dir() / check_name(new_name)
    if not old.is_dir():
        raise FerError(f"no dataset named {name!r}")
    if new.exists():
        raise FerError(f"a dataset named {new_name!r} exists already")
    copies = _copies_beside(name)
    moved = {copy: copy.with_name(new_name + copy.name[len(name) :]) for copy in copies}
    for copy, target in moved.items():  # the new copies first: a rename cut short loses none
        write_text_atomic(target, _renamed_paths(copy.read_text(encoding="utf-8"), name, new_name))
    old.rename(new)
    for copy in copies:
        copy.unlink(missing_ok=True)
    return new


def delete_dataset(name: str) -> None:
    """The folder deleted, and its corrected copies beside it (they name its images).

    Raises:
        FerError: no such dataset.
    """
    folder = datasets_dir() / check_name(name)
    if not folder.is_dir():
        raise FerError(f"no dataset named {name!r}")
    # Renamed first, so a delete cut short leaves a hidden folder, never half a dataset under its name.
    doomed = folder.with_name(f".deleting-{folder.name}")
    folder.rename(doomed)
    for copy in _copies_beside(name):
        copy.unlink(missing_ok=True)
    shutil.rmtree(doomed, ignore_errors=True)


def _copies_beside(name: str) -> list[Path]:
    """The corrected copies of the folder `name` the label review wrote beside it."""
    return [p for p in sorted(datasets_dir().glob(f"{name}-corrected*.csv")) if corrected_copy_of(p) == name]


def _renamed_paths(text: str, name: str, new_name: str) -> str:
    """A corrected copy's rows with their image paths under `new_name/` instead of `name/`."""
    rows = list(csv.reader(io.StringIO(text)))
    column = rows[0].index("path")
    for row in rows[1:]:
        if row[column].startswith(f"{name}/"):
            row[column] = f"{new_name}/" + row[column][len(name) + 1 :]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()
