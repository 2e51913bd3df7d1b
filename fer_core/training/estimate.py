"""How long a run will take, said before it starts: its training images and epochs at the speed
recorded for the same model, settings and precision on this machine (or one with the same
processor features and cores), and the minutes each run's process spends besides training
(start-up, loading the data, the final measurement) as recorded by the same runs. Every run is a
record: a cross-validation's folds too, and the shipped models' timed runs (their lineage). A
machine with no record has the shipped prior of its processor kind, said to be rough; with
neither, no number: the page then says so instead of guessing."""

from __future__ import annotations

import math
import os
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from fer_core.paths import PROJECT_ROOT, runs_dir, trained_dir
from fer_core.backend import SPEED_FLAGS, cpu_flags
from fer_core.errors import FerError
from fer_core.fileio import read_json
from fer_core.rundir import CONFIG_FILE, PROGRESS_FILE, read_history
from fer_core.words import counted
from fer_core.training.config import TrainConfig
from fer_core.training.splits import HELD_OUT_FRACTION

# The shipped models' lineage: the timed runs behind them, read even where FER_TRAINED_DIR points
# elsewhere (a fresh trained/ folder has none).
SHIPPED_LINEAGE = PROJECT_ROOT / "trained"
# Where a machine has no record at all: short timed runs of each model's defaults on the processor
# kinds we could measure (tools/speed_prior.py), scaled by cores and said to be rough.
SPEED_PRIOR = Path(__file__).with_name("speed_prior.json")


@dataclass(frozen=True)
class RunEstimate:
    train_images: int
    images_per_second: float | None  # None: no record of this model on this kind of machine
    minutes: float | None  # the training, capped by its time budget
    source: str  # where the speed comes from, in words
    besides_minutes: float | None = None  # start-up and the final measurement, all runs together

    @property
    def whole_minutes(self) -> float | None:
        """The whole: training and what each run's process does besides, where both are recorded."""
        if self.minutes is None or self.besides_minutes is None:
            return None
        return self.minutes + self.besides_minutes

    def describe(self, epochs: int) -> str:
        if self.minutes is None:
            return (
                f"{self.train_images:,} training images x {counted(epochs, 'epoch')}; no timed run of this model and "
                f"precision on this machine yet ({self.source}), so no estimate: the first epoch will tell"
            )
        training = (
            f"{_length(self.minutes)} of training: {self.train_images:,} training images x {counted(epochs, 'epoch')} "
            f"at {self.images_per_second:.0f} images/s ({self.source})"
        )
        if self.whole_minutes is None:
            return f"{training}; start-up and the final measurement not timed here yet"
        return (
            f"{_length(self.whole_minutes)} in all: {training}, and {_length(self.besides_minutes)} "
            "to start, load the data and measure the result (as those runs did)"
        )


def _length(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    return f"about {minutes:.1f} min" if minutes < 90 else f"about {minutes / 60:.1f} hours"


# When this process ended its last run: the next run's start-up counts from there (a
# cross-validation trains its folds in one process), the first run's from the process's start.
_last_run_ended: float | None = None


def setup_seconds() -> float | None:
    """A run's start-up so far (importing the backend, loading the data): since this process
    started (from Linux's /proc; None elsewhere), or since its previous run ended."""
    if _last_run_ended is not None:
        return round(time.monotonic() - _last_run_ended, 2)
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return round(uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError):
        return None


def run_ended() -> None:
    """Mark the end of a run in this process (for the next one's `setup_seconds`)."""
    global _last_run_ended
    _last_run_ended = time.monotonic()


def training_images(config: TrainConfig, counts: dict[str, int] | None = None, folds: int | None = None) -> int:
    """The number of images a run of `config` trains on (as prepare_data splits them), from the
    dataset's images per split (`fer_core.data.split_counts`, counted here when not given); with
    `folds`, what each fold of a cross-validation trains on."""
    from fer_core.data import split_counts

    counts = counts if counts is not None else split_counts(config.data)
    if config.limit:
        counts = {k: min(v, config.limit) for k, v in counts.items()}
    train = next((counts[k] for k in ("Training", "train") if k in counts), sum(counts.values()))
    if "PublicTest" in counts and "PrivateTest" in counts:
        return train  # PublicTest selects; all of Training trains
    if folds:  # each fold trains on the other folds' images
        train = train - math.ceil(train / folds)
    elif not any(k in counts for k in ("Training", "train", "PrivateTest", "PublicTest", "test")):
        # One pool: a share is held out to report on first (as_the_run_saw_it; scikit-learn rounds it up).
        train -= math.ceil(train * (config.held_out or HELD_OUT_FRACTION))
    return max(0, train - max(1, round(train * config.validation_split)))


@dataclass(frozen=True)
class Recorded:
    """What the records of one model, settings and precision say about this machine."""

    images_per_second: float
    source: str  # which records, in words
    besides_seconds: float | None  # a run's process besides its training (start-up, final measurement)


def recorded_speed(
    config: TrainConfig,
    precision: str,
    roots: list[Path] | None = None,
    gpus: list[str] | None = None,
    prior_file: Path | None = SPEED_PRIOR,
) -> Recorded | None:
    """The median of the records of this model, settings and precision on this host, else the
    median of those on machines with this one's processor features and core count, else (a rough
    prior: the shipped models' lineage holds 2-core runs) those on processors of the same features
    with another core count, scaled to this one's cores. Only those that trained on the same GPUs
    (`gpus`; none: on the CPU). Without any on a CPU, the shipped prior (`prior_file`, None for
    none) for this processor's features; else None."""
    host, flags, cores = socket.gethostname(), sorted(set(SPEED_FLAGS) & cpu_flags()), os.cpu_count()
    same_host, same_kind, scaled, scaled_from = [], [], [], set()
    for folder in _record_folders(roots):
        config_json = read_json(folder / CONFIG_FILE, {}) or {}
        progress = read_json(folder / PROGRESS_FILE, {}) or {}
        if (
            config_json.get("model") != config.model
            or config_json.get("precision") != precision
            or (config_json.get("model_params") or {}) != (config.model_params or {})
        ):
            continue
        speed = images_per_second(folder, progress)
        environment = progress.get("environment") or {}
        if speed is None or (environment.get("gpus") or []) != (gpus or []):  # a GPU's speed says nothing of a CPU's
            continue
        record = (folder.name, speed, _besides_seconds(progress))
        their_cores, same_flags = environment.get("cores"), sorted(environment.get("cpu_flags") or []) == flags
        if progress.get("host") == host and environment.get("cores", cores) == cores:
            same_host.append(record)
        elif same_flags and their_cores == cores:
            same_kind.append(record)
        elif same_flags and their_cores and not gpus:
            # Linear in the cores: more than a CPU's training gains from them, so it errs short.
            scaled.append((folder.name, speed * cores / their_cores, record[2]))
            scaled_from.add(int(their_cores))
    # The median: a run that shared the processor with other work is slower.
    if same_host:
        runs = f"run {same_host[0][0]}" if len(same_host) == 1 else f"median of {len(same_host)} runs"
        return _summarised(same_host, f"{runs} on this machine")
    if same_kind:
        return _summarised(same_kind, f"median of {len(same_kind)} recorded runs on {cores}-core CPUs like this one")
    if scaled:
        others = " or ".join(f"{n}-core" for n in sorted(scaled_from))
        return _summarised(
            scaled,
            f"rough: {counted(len(scaled), 'recorded run')} on {others} CPUs of this kind, scaled to {cores} cores",
        )
    if gpus:
        return None
    return prior_speed(config, precision, flags, cores, prior_file)


def prior_speed(
    config: TrainConfig, precision: str, flags: list[str], cores: int, prior_file: Path | None = SPEED_PRIOR
) -> Recorded | None:
    """The shipped prior's run of this model's defaults and precision on a processor with these
    features, scaled to `cores` (start-up and the final measurement not known from it)."""
    if prior_file is None or config.model_params:
        return None
    for run in (read_json(prior_file, {}) or {}).get("runs", []):
        if run["model"] == config.model and run["precision"] == precision and sorted(run["cpu_flags"]) == flags:
            kind = "held to AVX2 (oneDNN's ONEDNN_MAX_CPU_ISA)" if run["stands_in"] else f"with {', '.join(flags)}"
            return Recorded(
                run["images_per_second"] * cores / run["cores"],
                f"rough: the shipped prior's run on a {run['cores']}-core CPU {kind}, scaled to {cores} cores",
                None,
            )
    return None


def _summarised(records: list[tuple[str, float, float | None]], source: str) -> Recorded:
    besides = [b for _name, _speed, b in records if b is not None]
    return Recorded(
        statistics.median(speed for _name, speed, _b in records),
        source,
        statistics.median(besides) if besides else None,
    )


def estimate_run(
    config: TrainConfig,
    precision: str | None = None,
    roots: list[Path] | None = None,
    counts: dict[str, int] | None = None,
    folds: int | None = None,
    prior_file: Path | None = SPEED_PRIOR,
) -> RunEstimate:
    """The run's length before launch (`precision` resolved, default: as `auto` would pick on a
    CPU; `counts`: the dataset's images per split, when already known); with `folds`, the whole
    cross-validation's (a run a fold, the time budget shared by their training, each fold's
    start-up and final measurement besides).

    Raises:
        FerError: the dataset path does not exist.
    """
    from fer_core.backend import resolve_precision

    if not config.data:
        raise FerError("no dataset configured: set its path in the sidebar or FER_DATA")
    precision = precision or resolve_precision(config.precision, gpu=False)
    images = training_images(config, counts, folds)
    found = recorded_speed(config, precision, roots, prior_file=prior_file)
    if found is None:
        return RunEstimate(images, None, None, f"{config.model}, {precision}")
    minutes = config.epochs * images / found.images_per_second / 60.0 * (folds or 1)
    if config.minutes:  # the budget bounds the training; each fold's process starts and measures besides
        minutes = min(minutes, config.minutes)
    besides = found.besides_seconds * (folds or 1) / 60.0 if found.besides_seconds is not None else None
    return RunEstimate(images, found.images_per_second, minutes, found.source, besides)


def _record_folders(roots: list[Path] | None) -> list[Path]:
    """Every run folder under the roots (default: the runs folder and the trained models'
    lineage), a cross-validation's fold runs included."""
    if roots is None:
        trained = {trained_dir().resolve(), SHIPPED_LINEAGE.resolve()}
        roots = [runs_dir(), *(lineage for folder in sorted(trained) for lineage in folder.glob("*/lineage"))]
    folders = []
    for base in map(Path, roots):
        if base.is_dir():
            folders += [p for p in base.iterdir() if (p / CONFIG_FILE).is_file()]
            folders += [p for p in base.glob("*/fold-*") if (p / CONFIG_FILE).is_file()]
    return folders


def _besides_seconds(progress: dict) -> float | None:
    """A finished run's process besides its training: start-up to the first epoch, and the
    wrap-up (the final measurement); None for a run that did not record both."""
    setup, wrap_up = progress.get("setup_seconds"), progress.get("wrap_up_seconds")
    if progress.get("status") != "finished" or setup is None or wrap_up is None:
        return None
    return float(setup) + float(wrap_up)


def images_per_second(folder: Path, progress: dict) -> float | None:
    """Training images over the median epoch time (validation included), leaving out the first
    epoch when there are others: it includes compiling the graph."""
    images = progress.get("train_images")
    seconds = [row["seconds"] for row in read_history(folder) if row.get("seconds")]
    if not images or not seconds:
        return None
    return images / statistics.median(seconds[1:] or seconds)
