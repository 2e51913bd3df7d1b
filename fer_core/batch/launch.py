"""A batch job started from the dashboard: `fer-core batch` in a process of its own (the page only
reads the job's folder), listed with its state, stopped, and resumed by the same command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fer_core.batch.job import STOP_FILE, read_job
from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic
from fer_core.paths import runs_dir

COMMAND_FILE = "command.json"  # the arguments the job was started with (Resume runs them again)
_children: list[subprocess.Popen] = []  # reaped by `jobs()` once they end


def jobs_dir() -> Path:
    """Where the dashboard's jobs go: FER_RUNS_DIR/batch/."""
    return runs_dir() / "batch"


@dataclass
class JobState:
    folder: Path
    record: dict
    running: bool

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def progress(self) -> dict:
        return self.record.get("progress") or {}

    @property
    def status(self) -> str:
        status = self.record.get("status", "starting")
        return "stopped (ended unexpectedly)" if status == "running" and not self.running else status


def inputs_dir() -> Path:
    """Where the corpora brought as zips are unpacked: FER_RUNS_DIR/batch-inputs/<name>/."""
    return runs_dir() / "batch-inputs"


def unpack_inputs(data: bytes, name: str) -> list[str]:
    """An uploaded zip of photos and videos unpacked into `inputs_dir()/NAME` (safely, whole or not
    at all: `fer_core.data.archives`); the job's input arguments: the folder, or `--manifest CSV`
    where the zip holds one CSV beside its files (its `path` column relative to it).

    Raises:
        FerError: a bad name or one taken, not a zip, an unsafe or oversized one, or no files.
    """
    import shutil

    from fer_core.data.archives import hidden, open_zip, single_top_folder, unpack_into
    from fer_core.data.store import check_name

    final = inputs_dir() / check_name(name)
    if final.exists():
        raise FerError(f"inputs named {name!r} were unpacked already: choose another job name")
    archive, entries = open_zip(data)
    prefix = single_top_folder([e.filename for e in entries])
    members = [(e, e.filename[len(prefix) :]) for e in entries if not hidden(e.filename) and e.filename[len(prefix) :]]
    if not members:
        raise FerError("the archive holds no files")
    staging = unpack_into(archive, members, inputs_dir())
    try:
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifests = [relative for _entry, relative in members if "/" not in relative and relative.lower().endswith(".csv")]
    return ["--manifest", str(final / manifests[0])] if len(manifests) == 1 else [str(final)]


def start(arguments: list[str], name: str | None = None) -> Path:
    """Start `fer-core batch ARGUMENTS --out jobs_dir()/NAME` in its own process; returns the folder.

    Raises:
        FerError: a job of that name exists already.
    """
    name = name or time.strftime("%Y%m%d-%H%M%S")
    folder = jobs_dir() / name
    if folder.exists():
        raise FerError(f"a batch job named {name} exists already; choose another name or resume it")
    folder.mkdir(parents=True)
    write_json_atomic(folder / COMMAND_FILE, {"arguments": list(arguments)})
    _launch(folder)
    return folder


def resume(folder: str | os.PathLike) -> None:
    """Run a stopped job's command again: what is done is skipped."""
    folder = Path(folder)
    if state_of(folder).running:
        raise FerError(f"{folder.name} is running")
    (folder / STOP_FILE).unlink(missing_ok=True)
    _launch(folder)


def stop(folder: str | os.PathLike) -> None:
    (Path(folder) / STOP_FILE).touch()


def _launch(folder: Path) -> None:
    command = read_json(folder / COMMAND_FILE, {}).get("arguments")
    if not command:
        raise FerError(f"{folder}: no {COMMAND_FILE} to run")
    log = open(folder / "console.log", "a", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "fer_core", "batch", *command, "--out", str(folder), "--quiet"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # a stopped dashboard leaves the job running; Stop ends it cleanly
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    log.close()
    _children.append(process)


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    stat = Path(f"/proc/{int(pid)}/stat")
    return not stat.is_file() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def state_of(folder: Path) -> JobState:
    try:
        record = read_job(folder)
    except FerError:
        record = {"status": "starting"}
    running = any(child.poll() is None and Path(child.args[-2]) == folder for child in _children) or (
        record.get("status") == "running" and _alive(record.get("pid"))
    )
    return JobState(folder, record, running)


def jobs() -> list[JobState]:
    """Every job in jobs_dir(), newest first (children that ended are reaped here)."""
    _children[:] = [child for child in _children if child.poll() is None]
    folder = jobs_dir()
    found = [p for p in folder.iterdir() if (p / COMMAND_FILE).is_file()] if folder.is_dir() else []
    return [state_of(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]
