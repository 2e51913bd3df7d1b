"""The run-directory format, shared by its one writer (the training process) and its readers
(`fer_core.training.runs`, the Train page, the bench).

A run directory holds:
- `config.json`: the `TrainConfig`, written once before training starts (by `fer-core train`, or
  by the dashboard's launch, whose child process then reads it);
- `progress.json`: status, epoch/batch, ETA, stop reason; merged and rewritten atomically;
- `history.csv`: a row per finished epoch (HISTORY_COLUMNS);
- `model.keras`: the best model so far on the selection split;
- `checkpoint.keras` + `state.json`: the last finished epoch's full training state (resume);
- `metrics.json`: the best model on the reported split; `train.log`; `console.log` (what a
  launched process printed); `STOP` while a stop is requested.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timezone
from pathlib import Path

from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic, write_text_atomic
from fer_core.paths import runs_dir

CONFIG_FILE = "config.json"
PROGRESS_FILE = "progress.json"
HISTORY_FILE = "history.csv"
STATE_FILE = "state.json"
CHECKPOINT_FILE = "checkpoint.keras"
LOG_FILE = "train.log"
CONSOLE_FILE = "console.log"
STOP_FILE = "STOP"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")


def create_run_dir(
    model_name: str, out: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None
) -> Path:
    """Make a new, empty run directory: `run_dir` exactly, or `<out>/<time>-<model>`. `mkdir`
    without exist_ok means two launches never share one.

    Raises:
        FerError: the directory exists, or the folder cannot be created or written.
    """
    if run_dir is not None:
        path = Path(run_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise FerError(f"run directory already exists: {path} (use --resume to continue a run)") from None
        except OSError as exc:
            raise FerError(f"cannot create the run directory {path}: {exc.strerror}") from None
        return path
    root = Path(out) if out is not None else runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerError(f"cannot create the output folder {root}: {exc.strerror}") from None
    if not os.access(root, os.W_OK):
        raise FerError(f"the output folder is not writable: {root}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = root / (f"{stamp}-{model_name}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise FerError(f"cannot create a run directory in {root}: {exc.strerror}") from None
    raise FerError(f"cannot create a unique run directory in {root}")


def read_progress(run_dir: str | os.PathLike) -> dict:
    return read_json(Path(run_dir) / PROGRESS_FILE, {}) or {}


def write_progress(run_dir: str | os.PathLike, **fields) -> None:
    """Merge `fields` into progress.json, atomically."""
    progress = read_progress(run_dir)
    progress.update(fields)
    progress["updated_at"] = now()
    write_json_atomic(Path(run_dir) / PROGRESS_FILE, progress)


def write_progress_quietly(run_dir: str | os.PathLike, **fields) -> None:
    """write_progress for a run that is ending anyway: a full disk must not hide the real error."""
    try:
        write_progress(run_dir, **fields)
    except OSError:
        pass  # the reader will see the process gone and call the run failed


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """history.csv as dicts (epoch an int, the rest floats); [] before the first epoch."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            {k: float(v) if k != "epoch" else int(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(handle)
        ]


def write_history(run_dir: str | os.PathLike, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(Path(run_dir) / HISTORY_FILE, buffer.getvalue())


def minutes_trained(history: list[dict]) -> float:
    return sum(row.get("seconds", 0.0) for row in history) / 60.0


def log_tail(run_dir: str | os.PathLike, lines: int = 15) -> str | None:
    """The last `lines` lines of train.log, or None before it exists."""
    path = Path(run_dir) / LOG_FILE
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def pid_alive(pid) -> bool:
    """Whether a process with this pid is running on this machine. A child of this process that
    has ended is reaped here, and a zombie (ended, not yet reaped by its parent) counts as dead:
    `os.kill(pid, 0)` alone succeeds on both, which once kept a finished run "in progress" for as
    long as the dashboard that launched it lived."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False  # our child, ended just now: reaped
    except ChildProcessError:
        pass  # not our child (or already reaped): ask the system
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Linux's /proc state "Z"; elsewhere (no /proc) a process that answers signals is alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The command name (field 2) is in parentheses and may hold spaces; the state follows it.
    return stat[stat.rindex(")") + 2 : stat.rindex(")") + 3] == "Z"
