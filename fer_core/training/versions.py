"""Kept versions of trained models: a model replaced by a promotion or a restore moves whole to
`trained/.versions/<name>/<UTC time>/`, and `restore` brings one back (keeping the one it replaces),
so no model is ever destroyed. `trained/<name>/` names a complete model at every moment."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fer_core.artifacts import MODEL_FILE
from fer_core.errors import FerError
from fer_core.paths import trained_dir

# A hidden folder, so no picker lists an old version as a model of its own.
VERSIONS_FOLDER = ".versions"


def check_model_name(name: str) -> None:
    """A trained/ folder name: one path part, not hidden (hidden folders hold kept versions)."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise FerError(f"invalid model name for trained/: {name!r}")


def versions_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    base = Path(root) if root is not None else trained_dir()
    return base / VERSIONS_FOLDER / name


def list_versions(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The kept versions of `trained/<name>/`, newest first."""
    folder = versions_dir(name, root)
    if not folder.is_dir():
        return []
    kept = [p for p in folder.iterdir() if not p.name.startswith(".") and (p / MODEL_FILE).is_file()]
    return sorted(kept, key=lambda p: p.name, reverse=True)


def restore(name: str, version: str | None = None, root: str | os.PathLike | None = None) -> Path:
    """Bring back a kept version of `trained/<name>/` (the newest, or `version`); the model it
    replaces is kept in turn, so a restore can itself be undone.

    Raises:
        FerError: no such model or kept version.
    """
    check_model_name(name)
    kept = list_versions(name, root)
    if not kept:
        raise FerError(f"no kept versions of {name!r} (kept versions live in {versions_dir(name, root)})")
    chosen = next((p for p in kept if p.name == version), None) if version else kept[0]
    if chosen is None:
        raise FerError(f"no version {version!r} of {name!r}; kept: {', '.join(p.name for p in kept)}")
    final = (Path(root) if root is not None else trained_dir()) / name
    # The chosen version moves aside first, so a kill midway never leaves two copies half-moved.
    incoming = chosen.with_name(f".restoring-{chosen.name}")
    os.rename(chosen, incoming)
    swap_in(incoming, final)
    return final


def swap_in(new: Path, final: Path) -> None:
    """Put the folder `new` at `final`. An existing `final` is moved whole to the kept versions,
    first exchanged with `new` in one atomic step where the system allows (Linux renameat2), so
    `final` names a complete model at every moment."""
    if not final.exists():
        os.rename(new, final)
        return
    kept = versions_dir(final.name, final.parent)
    kept.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target, n = kept / stamp, 1
    while target.exists():
        n += 1
        target = kept / f"{stamp}-{n}"
    if _exchange(new, final):
        os.rename(new, target)  # `new` now holds the old model
    else:  # no atomic exchange here: two renames, microseconds apart
        os.rename(final, target)
        os.rename(new, final)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    if sys.platform != "linux":
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0
