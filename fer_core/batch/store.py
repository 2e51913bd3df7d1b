"""A job's folder, written by the job only:

- `faces/<key>.parquet`: a shard of rows, a row per face per analysed frame;
- `done/<key>.parquet`: the per-input rows (status, error, counts) of the inputs whose faces are in
  `faces/<key>.parquet`, written after it: a shard counts only once its `done/` twin exists, so a
  job killed between the two writes leaves a shard no reader sees, and its inputs are done again;
- `files.parquet`: every input's latest row, gathered from `done/` when the job ends;
- `job.json`: settings (a rerun with others is refused), model, versions, counts, timings, progress.

Each file is written whole to a temp name and renamed (`fileio.write_atomic`). An input analysed
twice (a rerun after its file changed, a retried failure) is read from its latest shard only.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from fer_core.errors import FerError
from fer_core.fileio import read_json, write_atomic, write_json_atomic

FACES, DONE, FILES, JOB = "faces", "done", "files.parquet", "job.json"
LAUNCH_FILES = {"command.json", "console.log"}  # what the dashboard's launcher puts there first


def shard_key() -> str:
    """Sortable by time written (the latest shard of an input wins), unique across processes."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def write_table(path: Path, table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: pq.write_table(table, str(tmp), compression="zstd"))


def write_shard(out: Path, faces, files) -> str:
    """Write one shard (faces first, then the ledger rows that make it count); returns its key."""
    key = shard_key()
    write_table(out / FACES / f"{key}.parquet", faces)
    write_table(out / DONE / f"{key}.parquet", files)
    return key


def _shards(folder: Path) -> list[Path]:
    """A folder's shards, in the order written; never a temp file (".<key>.tmp...") a write left."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.parquet") if not path.name.startswith("."))


def _done_tables(out: Path):
    import pyarrow.parquet as pq

    folder = out / DONE
    for path in _shards(folder):
        yield path.stem, pq.read_table(path)


def latest_files(out: str | os.PathLike):
    """The per-input rows, each input's latest (pandas), with the shard key it came from."""
    import pandas as pd

    frames = []
    for key, table in _done_tables(Path(out)):
        frame = table.to_pandas()
        frame["shard"] = key
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["source", "kind", "status", "error", "frames", "faces", "seconds", "shard"])
    every = pd.concat(frames, ignore_index=True)
    return every.sort_values("shard", kind="stable").drop_duplicates("source", keep="last").reset_index(drop=True)


def load_files(out: str | os.PathLike):
    """A row per input (pandas): source, kind, status (done/failed), error, frames, faces, seconds,
    each class's share of its faces, and the manifest's columns."""
    return latest_files(out).drop(columns=["shard"])


def load(out: str | os.PathLike, columns: list[str] | None = None):
    """The faces (pandas): a row per face per analysed frame, from each input's latest shard only.

    Raises:
        FerError: `out` holds no job.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    out = Path(out)
    if not (out / JOB).is_file():
        raise FerError(f"{out}: not a batch job's folder (no {JOB})")
    files = latest_files(out)
    by_shard = files[files["status"] == "done"].groupby("shard")["source"].apply(set)
    frames = []
    for key, sources in by_shard.items():
        table = pq.read_table(out / FACES / f"{key}.parquet", columns=columns)
        frame = table.to_pandas()
        frames.append(frame[frame["source"].isin(sources)] if "source" in frame else frame)
    if not frames:
        job = read_json(out / JOB, {})
        return pd.DataFrame(columns=job.get("face_columns", []))
    return pd.concat(frames, ignore_index=True)


def sweep(out: Path) -> int:
    """Remove what a killed job left: temp files and faces shards without their ledger twin."""
    removed = 0
    for folder in (out / FACES, out / DONE):
        for leftover in folder.glob(".*.tmp*") if folder.is_dir() else []:
            leftover.unlink(missing_ok=True)
    done = {path.stem for path in _shards(out / DONE)}
    for shard in _shards(out / FACES):
        if shard.stem not in done:
            shard.unlink(missing_ok=True)
            removed += 1
    return removed


def claim(out: Path, settings: dict) -> dict:
    """The job's record: a new folder's is written; a folder holding a job with the same settings
    is continued; one with other settings is refused.

    Raises:
        FerError: `out` is a file, a folder with other content, or a job with other settings.
    """
    if out.exists() and not out.is_dir():
        raise FerError(f"{out}: is a file; --out names a folder")
    record = read_json(out / JOB)
    if record is None:
        if out.is_dir() and any(p.name not in LAUNCH_FILES for p in out.iterdir()):
            raise FerError(f"{out}: the folder holds other files; choose an empty or new folder for --out")
        out.mkdir(parents=True, exist_ok=True)
        record = {"settings": settings, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json_atomic(out / JOB, record)
        return record
    before = record.get("settings", {})
    changed = [f"{k} {before.get(k)!r} there, {v!r} here" for k, v in settings.items() if before.get(k) != v]
    if changed:
        raise FerError(f"{out} holds a job with other settings ({'; '.join(changed)}): choose another --out")
    return record


def gather_files(out: Path) -> None:
    """files.parquet: every input's latest row, from the ledger."""
    import pyarrow as pa

    files = load_files(out)
    write_table(out / FILES, pa.Table.from_pandas(files, preserve_index=False))
