"""Atomic writes: a reader (or a crash) never sees half a file.

Every file a run or a promotion writes goes through here: write a temp file beside the target,
flush it to disk, then `os.replace`, which is atomic on POSIX filesystems.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

from fer_core.errors import FerError


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temp file beside `path`, then rename it over `path`."""
    path = Path(path)
    # Same folder (same filesystem) so os.replace is a rename; the suffix is kept because
    # Keras insists on a ".keras" file name.
    # The thread too: two threads of one server may write the same cache file at once.
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def save_model_atomic(model, path: str | os.PathLike) -> None:
    """`model.save` to a temp `.keras` file, then rename over `path`."""
    write_atomic(Path(path), lambda tmp: model.save(str(tmp)))


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file; `default` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays appear in metrics; JSON has no type for them.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def file_sha256(path) -> str:
    """The sha256 of a file (a model file's identity in caches, model cards and records)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise FerError(f"cannot read model file {path}: {exc.strerror}") from None
    return digest.hexdigest()
