"""tools/training_curve.py reads real run folders and chains warm starts by what they recorded."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import training_curve  # noqa: E402


@pytest.fixture(scope="module")
def two_sessions(tiny_run, folder_dataset, tmp_path_factory) -> Path:
    """The tiny run and a one-epoch warm start from it, as two run folders of one records folder."""
    from fer_core.data import load_dataset
    from fer_core.training.recipe import describe_init
    from helpers import tiny_config
    from fer_core.training.loop import train

    records = tmp_path_factory.mktemp("records")
    shutil.copytree(tiny_run, records / "first")
    config = tiny_config(folder_dataset, batch_size=16, init_from=describe_init(str(tiny_run), "cnn"))
    train(config, out=records, run_dir=records / "second", dataset=load_dataset(folder_dataset), echo=False)
    # Distinct accuracies (the synthetic faces leave a tiny model at chance) so that the best is one epoch.
    for run, accuracies in (("first", ["0.3", "0.5"]), ("second", ["0.4"])):
        history = records / run / "history.csv"
        rows = list(csv.DictReader(history.open(newline="")))
        for row, accuracy in zip(rows, accuracies, strict=True):
            row["val_accuracy"] = accuracy
        with history.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return records


def test_a_warm_start_continues_its_source_s_curve(two_sessions):
    first, second = sorted(training_curve.read_records(two_sessions), key=lambda r: r.minutes_before)
    assert (first.name, second.name) == ("first", "second")
    assert first.minutes_before == 0 and len(first.selection) == 2 and second.epochs_before == 2
    # The second run starts where the first ended (the minutes its config recorded), epoch by epoch after.
    assert second.minutes_before == pytest.approx(first.minutes[-1], abs=0.01)
    assert second.minutes[0] > second.minutes_before
    assert first.machine.startswith("CPU") and first.public_test is not None
    assert not first.teachers and not second.teachers


def test_a_distilled_run_is_marked(two_sessions, tmp_path):
    distilled = tmp_path / "distilled"
    shutil.copytree(two_sessions / "second", distilled)
    config = json.loads((distilled / "config.json").read_text())
    config["distill_from"] = {"weight": 0.6, "tta": "flip", "teachers": [{"model": "cnn", "path": "cnn.keras"}]}
    (distilled / "config.json").write_text(json.dumps(config))
    assert training_curve.read_record(distilled).teachers
    assert "| distilled (distilled) |" in "\n".join(training_curve.runs_table(training_curve.read_records(tmp_path)))


def test_the_curve_is_the_best_so_far_and_ends_at_the_last_trained_minute(two_sessions):
    records = training_curve.read_records(two_sessions)
    end = max(record.minutes[-1] for record in records)
    first_epoch = min(record.minutes[0] for record in records)
    marks = [first_epoch / 2, end, end * 2]
    label = training_curve.family_label(records[0])
    assert label == "cnn (dense_units=32, filters=[8, 16, 32])"  # a shape of its own is a curve of its own
    curve = training_curve.best_by_minute(records, marks)[label]
    # Before any epoch nothing; by the end the best of both runs (the first's second epoch, not the
    # second run's last); after the mark that reaches the last trained minute, nothing again.
    assert curve == [None, (0.5, records[0].machine), None]


def test_the_command_prints_both_tables_and_refuses_a_missing_folder(two_sessions, tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "training_curve.py")]
    printed = subprocess.run([*tool, str(two_sessions)], capture_output=True, text=True, check=True).stdout
    assert "| first | CPU" in printed and "| second | CPU" in printed and "| model | 30 min |" in printed
    missing = subprocess.run([*tool, str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert missing.returncode == 2 and "not a folder" in missing.stderr and "Traceback" not in missing.stderr
    empty = subprocess.run([*tool, str(tmp_path)], capture_output=True, text=True)
    assert empty.returncode == 2 and "no run records" in empty.stderr
