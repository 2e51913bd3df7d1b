"""Zips brought through the browser, read safely: what the Dataset page's datasets and the Batch
page's corpora are unpacked with. Refused: a path outside the folder (absolute, `..`), a link, more
than MAX_FILES files or MAX_TOTAL_BYTES unpacked, a member that inflates more than MAX_RATIO
times (a zip bomb) or past the size its header declares. Unpacked into a hidden staging folder
and renamed into place only when whole, so a refused or cut-short upload leaves nothing."""

from __future__ import annotations

import io
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from fer_core.data.images import unsafe_archive_path
from fer_core.errors import FerError

MAX_FILES = 100_000
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_RATIO = 200  # a member's unpacked size over its compressed size; images barely compress
STAGING_PREFIX = ".unpacking-"


def open_zip(data: bytes) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The archive and its files (not folders), every one checked (`check_archive`).

    Raises:
        FerError: not a zip, or an unsafe or oversized one.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FerError(f"not a readable zip archive ({' '.join(str(exc).split())[:120]})") from None
    check_archive(entries)
    return archive, entries


def check_archive(entries: list[zipfile.ZipInfo]) -> None:
    if len(entries) > MAX_FILES:
        raise FerError(f"the archive holds {len(entries):,} files, over the {MAX_FILES:,} limit")
    total = 0
    for entry in entries:
        if unsafe_archive_path(entry.filename):
            raise FerError(f"{entry.filename}: refused: the path leads outside the folder it unpacks into")
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


def hidden(filename: str) -> bool:
    """A member nobody meant to send: macOS' resource forks, dot files."""
    return "__MACOSX" in filename or filename.rstrip("/").split("/")[-1].startswith(".")


def unpack_into(archive: zipfile.ZipFile, members: list[tuple[zipfile.ZipInfo, str]], root: Path) -> Path:
    """`members` (entry, path inside the new folder) written into a new hidden staging folder in
    `root`, returned; the caller renames it into place once it has checked it (`shutil.rmtree`
    it on failure: `staged` does both)."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        for entry, relative in members:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(entry) as source, open(target, "wb") as sink:
                _copy_bounded(source, sink, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _copy_bounded(source, sink, entry: zipfile.ZipInfo) -> None:
    """Copy a member, refusing one that inflates past the size its header declared (headers lie)."""
    written = 0
    while chunk := source.read(1 << 20):
        written += len(chunk)
        if written > entry.file_size:
            raise FerError(f"{entry.filename}: refused: it unpacks past the size its header declares")
        sink.write(chunk)


def single_top_folder(names: list[str]) -> str:
    """'top/' when every member lies in one folder `top` (a zip of a folder), else ''."""
    names = [name for name in names if not name.startswith("__MACOSX/")]
    tops = {name.split("/")[0] for name in names}
    if len(tops) != 1 or not all("/" in name for name in names):
        return ""
    return f"{tops.pop()}/"
