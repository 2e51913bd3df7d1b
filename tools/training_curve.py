"""Accuracy against cumulative training, model by model, from the records of every run.

    python tools/training_curve.py trained [--model cnn]

Each run folder holds what `fer-core train` wrote (config.json, history.csv, progress.json,
metrics.json). A warm start records in `config.json` how many epochs and minutes its starting
file had behind it (`init_from`), which places the run on its model's curve without any manual
ordering: the curve's x is those minutes plus this run's own, epoch by epoch. The y is the
selection accuracy (the Training slice that picks each best epoch), the one number every run
measured the same way; the PublicTest column is the run's own report of its best epoch.
Prints Markdown: one row per run, then per model the best selection accuracy reached by each
cumulative minute, marked where a GPU run reached it.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunRecord:
    name: str
    model: str
    params: dict
    machine: str
    minutes_before: float
    epochs_before: int
    minutes: list[float]  # cumulative minutes at the end of each epoch, this run's start included
    selection: list[float]  # selection accuracy after each epoch
    public_test: float | None
    teachers: bool
    stop_reason: str | None

    @property
    def best(self) -> tuple[float, int]:
        value = max(self.selection)
        return value, self.selection.index(value) + 1


def machine_of(progress: dict) -> str:
    environment = progress.get("environment") or {}
    gpus = environment.get("gpus") or []
    if gpus:
        return f"GPU ({gpus[0]})"
    return f"CPU ({environment.get('cores', '?')}-core {environment.get('cpu', '?')})"


def read_record(folder: Path, name: str | None = None) -> RunRecord | None:
    """One run folder as a RunRecord; None for a folder with no finished epoch."""
    history_path = folder / "history.csv"
    if not (folder / "config.json").is_file() or not history_path.is_file():
        return None
    config = json.loads((folder / "config.json").read_text())
    with history_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    progress_path, metrics_path = folder / "progress.json", folder / "metrics.json"
    progress = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    init = config.get("init_from") or {}
    minutes, total = [], float(init.get("minutes") or 0.0)
    for row in rows:
        total += float(row["seconds"]) / 60.0
        minutes.append(total)
    return RunRecord(
        name=name or folder.name,
        model=config["model"],
        params=config.get("model_params") or {},
        machine=machine_of(progress),
        minutes_before=float(init.get("minutes") or 0.0),
        epochs_before=int(init.get("epochs") or 0),
        minutes=minutes,
        selection=[float(row["val_accuracy"]) for row in rows],
        # The first runs reported on their selection slice; only a PublicTest report is one.
        public_test=metrics.get("accuracy") if metrics.get("split") == "PublicTest" else None,
        teachers=bool(config.get("distill_from")),
        stop_reason=progress.get("stop_reason"),
    )


# Lineage runs that picked their best epoch on PublicTest: their accuracy column is not the
# selection accuracy the others share, so they stay off the curves.
PUBLICTEST_SELECTED = "selected-on-publictest"


def read_records(root: Path) -> list[RunRecord]:
    """Every run folder under `root`; in a trained/ folder, its models' lineage (a model's own
    files repeat its last lineage entry, and kept versions repeat the model)."""
    folders = sorted(
        path.parent
        for path in root.rglob("history.csv")
        if ".versions" not in path.relative_to(root).parts
        and not (path.parent / "lineage").is_dir()
        and not path.parent.name.endswith(PUBLICTEST_SELECTED)
    )
    records = (read_record(folder, folder.relative_to(root).as_posix()) for folder in folders)
    return [record for record in records if record is not None]


def family_label(record: RunRecord) -> str:
    """The model and any non-default shape: a narrower attention_cnn is its own curve."""
    if not record.params:
        return record.model
    shape = ", ".join(f"{key}={value}" for key, value in sorted(record.params.items()) if key != "image_size")
    return f"{record.model} ({shape})" if shape else record.model


def runs_table(records: list[RunRecord]) -> list[str]:
    lines = [
        "| model | run | machine | behind it (epochs / min) | this run (epochs / min) "
        "| selection: first → best (epoch) → last | PublicTest of its best | ended by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record in sorted(records, key=lambda r: (family_label(r), r.minutes_before, r.name)):
        best, best_epoch = record.best
        run_minutes = record.minutes[-1] - record.minutes_before
        public = f"{record.public_test:.4f}" if record.public_test is not None else "—"
        name = record.name + (" (distilled)" if record.teachers else "")
        lines.append(
            f"| {family_label(record)} | {name} | {record.machine} | {record.epochs_before} / "
            f"{record.minutes_before:.0f} | {len(record.selection)} / {run_minutes:.0f} | {record.selection[0]:.4f} → "
            f"{best:.4f} ({best_epoch}) → {record.selection[-1]:.4f} | {public} | {record.stop_reason or '—'} |"
        )
    return lines


def best_by_minute(records: list[RunRecord], marks: list[float]) -> dict[str, list[tuple[float, str] | None]]:
    """For each model, the best selection accuracy any of its runs had reached by each cumulative
    minute mark, with the machine of the run that reached it (None before its first epoch and
    after the mark that follows its last)."""
    curves: dict[str, list[tuple[float, str] | None]] = {}
    for record in records:
        curve = curves.setdefault(family_label(record), [None] * len(marks))
        for at, accuracy in zip(record.minutes, record.selection):
            for index, mark in enumerate(marks):
                if at <= mark and (curve[index] is None or accuracy > curve[index][0]):
                    curve[index] = (accuracy, record.machine)
    trained_until = {}
    for record in records:
        label = family_label(record)
        trained_until[label] = max(trained_until.get(label, 0.0), record.minutes[-1])
    for label, curve in curves.items():  # best so far, up to the model's last trained minute
        for index in range(1, len(curve)):
            if marks[index - 1] >= trained_until[label]:
                curve[index] = None
            elif curve[index - 1] is not None and (curve[index] is None or curve[index][0] < curve[index - 1][0]):
                curve[index] = curve[index - 1]
    return curves


def curve_table(records: list[RunRecord], marks: list[float]) -> list[str]:
    lines = [
        "| model | " + " | ".join(f"{mark:g} min" for mark in marks) + " |",
        "|---|" + "---|" * len(marks),
    ]
    for label, curve in sorted(best_by_minute(records, marks).items()):
        cells = []
        for value in curve:
            if value is None:
                cells.append("")
            else:
                cells.append(f"{value[0]:.4f}" + (" (GPU)" if value[1].startswith("GPU") else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder of run folders, or trained/ (searched recursively)")
    parser.add_argument("--model", help="only this model's runs")
    parser.add_argument(
        "--marks", default="30,60,90,120,180,240,300", help="cumulative minutes at which to read the curve"
    )
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root}: not a folder", file=sys.stderr)
        return 2
    records = [r for r in read_records(args.root) if args.model in (None, r.model)]
    if not records:
        print(f"error: {args.root}: no run records (config.json + history.csv) found", file=sys.stderr)
        return 2
    try:
        marks = [float(mark) for mark in args.marks.split(",")]
    except ValueError:
        print(f"error: --marks: expected minutes separated by commas, got {args.marks!r}", file=sys.stderr)
        return 2
    print("\n".join(runs_table(records)))
    print()
    print("Best selection accuracy reached by each cumulative minute of training (CPU and GPU minutes")
    print("alike; (GPU): reached in a GPU run):")
    print()
    print("\n".join(curve_table(records, marks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
