"""fer_core.training.runs and launch: what a run directory says (status, progress) and when a launch is free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from fer_core import FerError
from fer_core.training.runs import list_runs, read_run, request_stop
from fer_core.training.promote import promote
from fer_core.training.config import TrainConfig


def test_a_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": dead.pid, "epoch": 2, "epochs": 5}))
    info = read_run(run)
    assert info.status == "interrupted" and not info.active
    with pytest.raises(FerError, match="not running"):
        request_stop(run)
    assert [r.name for r in list_runs(tmp_path)] == ["r"]


def test_a_finished_child_that_was_never_reaped_reads_as_ended(tmp_path):
    """A launched training process that ended stays a zombie until its parent waits for it; the
    dashboard that launched it is that parent, and a zombie answers os.kill(pid, 0)."""
    from pathlib import Path

    from fer_core.rundir import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
        time.sleep(0.05)  # ended, not reaped: a zombie
    (tmp_path / ".launch.lock").write_text(str(child.pid))
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": child.pid, "epoch": 2, "epochs": 5}))
    assert not pid_alive(child.pid)
    assert read_run(run).status == "interrupted"
    assert not Path(f"/proc/{child.pid}").exists()  # and it was reaped on the way
    assert pid_alive(os.getpid())


def test_a_run_asked_to_stop_reads_as_stopping_until_it_ends(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "epoch": 2, "epochs": 5}))
    request_stop(run)
    info = read_run(run)
    assert info.status == "stopping" and info.active
    (run / "progress.json").write_text(json.dumps({"status": "stopped", "pid": os.getpid(), "epoch": 2}))
    assert read_run(run).status == "stopped"


def test_a_run_directory_is_never_shared(tmp_path):
    from fer_core.rundir import create_run_dir

    config = TrainConfig()
    create_run_dir(config.model, run_dir=tmp_path / "run")
    with pytest.raises(FerError, match="already exists"):
        create_run_dir(config.model, run_dir=tmp_path / "run")
    made = {create_run_dir(config.model, out=tmp_path / "many") for _ in range(5)}
    assert len(made) == 5  # same second, still distinct folders


def test_a_launched_process_that_died_before_training_reads_as_failed_with_its_output(tmp_path):
    from fer_core.training.runs import run_log

    run = tmp_path / "20260101-000000-cnn"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (run / "console.log").write_text("loading...\nfer-core: error: dataset path does not exist: /nowhere\n")
    info = read_run(run)  # no launch lock with a live process beside it
    assert (
        info.status == "failed" and info.progress["error"] == "fer-core: error: dataset path does not exist: /nowhere"
    )
    assert "dataset path does not exist" in run_log(info)
    # While the launched process lives (its pid in the launch lock), the run is starting, and active.
    (tmp_path / ".launch.lock").write_text(str(os.getpid()))
    info = read_run(run)
    assert info.status == "starting" and info.active


def test_a_launched_process_still_exiting_after_its_run_ended_does_not_block_the_next_launch(tmp_path):
    """The run says "finished" seconds before its process is gone (TensorFlow shutting down); a
    launch in that window was once refused as "already in progress"."""
    from fer_core.training.launch import _take_launch_lock
    from fer_core.training.runs import launched_process_alive

    run = tmp_path / "20260101-000000-cnn"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (tmp_path / ".launch.lock").write_text(f"{os.getpid()}\n{run.name}\n")  # a live pid
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    assert launched_process_alive(tmp_path)
    with pytest.raises(FerError, match="already in progress"):
        _take_launch_lock(tmp_path)
    (run / "progress.json").write_text(json.dumps({"status": "finished", "pid": os.getpid()}))
    assert not launched_process_alive(tmp_path)
    os.close(_take_launch_lock(tmp_path))  # taken: the stale lock was replaced


@pytest.mark.parametrize(
    "config, progress, status, fraction, fragments",
    [
        (
            {"epochs": 4},
            {"epoch": 2, "batch": 5, "batches": 10, "eta_seconds": 90, "images_per_second": 200},
            "running",
            0.375,
            ["epoch 2/4, batch 5/10", "about 1.5 min left (200 images/s)"],
        ),
        (
            {"epochs": 100, "minutes": 30},
            {"epoch": 2, "batch": 1, "batches": 10, "minutes_left": 12.0},
            "running",
            0.6,
            ["12.0 of 30 budgeted min left"],
        ),
        ({"epochs": 4}, {"epoch": 3, "stop_reason": "early_stop"}, "finished", 1.0, ["(ended by: early stop)"]),
        (
            {"epochs": 4},
            {"epoch": 0, "phase": "distillation targets: teacher 2 of 4 (vgg_fer)"},
            "starting",
            0.0,
            ["distillation targets: teacher 2 of 4 (vgg_fer) (before epoch 1)"],
        ),
        # No finished epoch yet: no time left is made up from the compiling first batches.
        ({"epochs": 4}, {"epoch": 1, "batch": 3, "batches": 10, "eta_seconds": None}, "running", 0.075, ["estimating"]),
        # Asked to stop: the state says so, and no time left is shown.
        (
            {"epochs": 50},
            {"epoch": 3, "batch": 4, "batches": 10, "eta_seconds": 2000},
            "stopping",
            0.048,
            ["stopping after batch 4/10 of epoch 3"],
        ),
        (
            {"epochs": 50},
            {"epoch": 3, "batch": 10, "batches": 10, "wrapping_up": True, "phase": "final evaluation: measuring"},
            "stopping",
            0.06,
            ["final evaluation: measuring"],
        ),
    ],
)
def test_progress_view_follows_the_budget_or_the_epochs(config, progress, status, fraction, fragments):
    from pathlib import Path

    from fer_core.training.runs import RunInfo, progress_view

    info = RunInfo(Path("r"), status, "cnn", progress.get("epoch", 0), config["epochs"], None, progress, config)
    view = progress_view(info)
    assert view.fraction == pytest.approx(fraction)
    for fragment in fragments:
        assert fragment in view.text
    if status == "stopping" or ("eta_seconds" in progress and progress["eta_seconds"] is None):
        assert "min left" not in view.text


def test_saved_models_are_model_refs_with_their_family_and_history(tiny_run, tmp_path, monkeypatch):
    from fer_core.artifacts import saved_models
    from fer_core.training.runs import models_and_runs

    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tiny_run.parent))
    promote(tiny_run, "my_cnn", dest_root=tmp_path / "trained")
    refs = models_and_runs()
    assert [r.name for r in refs] == ["my_cnn", f"run {tiny_run.name}"]
    for ref in refs:  # the family comes from the saved config, not from the file or Keras' model name
        assert ref.spec.name == "cnn" and ref.model_file.is_file() and len(ref.history) == 2
    assert [r.name for r in saved_models()] == ["my_cnn"]
