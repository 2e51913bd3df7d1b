"""Promotion never loses a model: a plain promote refuses an existing name, --replace keeps the
old version, --restore brings it back, and a promote killed midway leaves the old model intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core.errors import FerError
from fer_core.data import load_dataset
from fer_core.fileio import read_json
from fer_core.training.promote import list_versions, promote, restore
from helpers import assert_one_line_error, cli

pytestmark = pytest.mark.slow


def fake_accuracy(folder: Path, accuracy: float) -> None:
    """Mark a trained model with a recognisable accuracy (what the refusal line must show)."""
    metrics = read_json(folder / "metrics.json")
    (folder / "metrics.json").write_text(json.dumps({**metrics, "accuracy": accuracy}))


def test_a_plain_promote_never_replaces_and_its_default_name_is_new(tiny_run, tmp_path):
    dest = tmp_path / "trained"
    shipped = promote(tiny_run, dest_root=dest)  # no model of that name yet: the run's model name
    assert shipped.name == "cnn"
    fake_accuracy(shipped, 0.6562)
    before = (shipped / "model.keras").read_bytes()
    with pytest.raises(FerError) as refused:
        promote(tiny_run, "cnn", dest_root=dest)
    line = str(refused.value)
    assert "trained/cnn exists" in line and "--replace" in line
    images = read_json(shipped / "metrics.json")["n"]
    assert f"cnn 0.6562 on {images:,} PublicTest images now; this run " in line
    assert "do not compare" not in line  # the same set: the two numbers compare
    assert "\n" not in line
    assert (shipped / "model.keras").read_bytes() == before
    # No name given, and trained/cnn exists: a new, dated name, but only on purpose: the same run
    # twice is a second copy of one model.
    with pytest.raises(FerError, match=r"is promoted already, as cnn; to keep a second copy as cnn-.*\(--again\)"):
        promote(tiny_run, dest_root=dest)
    second = promote(tiny_run, dest_root=dest, again=True)
    assert second.name.startswith("cnn-") and second.name != "cnn"
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(["cnn", second.name])
    assert (shipped / "model.keras").read_bytes() == before


def test_two_runs_of_the_same_minute_and_settings_are_two_models(tiny_run, tmp_path):
    """A lineage entry is named by the minute its run started and what it did: a second run of
    that minute (another model, or the same one a few seconds later) is not "promoted already"."""
    import shutil

    dest = tmp_path / "trained"
    promote(tiny_run, "first", dest_root=dest)
    later = tmp_path / "later"
    shutil.copytree(tiny_run, later)
    progress = read_json(later / "progress.json")
    started = progress["started_at"]
    second = "00" if started[17:19] != "00" else "01"
    (later / "progress.json").write_text(json.dumps({**progress, "started_at": started[:17] + second + started[19:]}))
    assert promote(later, dest_root=dest).name == "cnn"  # its own model, named as new ones are
    with pytest.raises(FerError, match="is promoted already, as first"):
        promote(tiny_run, dest_root=dest)


def test_replace_keeps_the_old_version_and_restore_brings_it_back(tiny_run, tmp_path, monkeypatch):
    from fer_core.artifacts import list_trained, saved_models

    dest = tmp_path / "trained"
    monkeypatch.setenv("FER_TRAINED_DIR", str(dest))
    shipped = promote(tiny_run, "cnn", dest_root=dest)
    fake_accuracy(shipped, 0.6562)
    old_metrics = (shipped / "metrics.json").read_text()
    promote(tiny_run, "cnn", dest_root=dest, replace=True)
    assert read_json(shipped / "metrics.json")["accuracy"] != 0.6562  # the new one is in place
    kept = list_versions("cnn", dest)
    assert len(kept) == 1 and (kept[0] / "metrics.json").read_text() == old_metrics
    # Kept versions are not models of their own anywhere a model is picked.
    assert list_trained() == ["cnn"] and [r.name for r in saved_models()] == ["cnn"]
    restore("cnn", root=dest)
    assert (shipped / "metrics.json").read_text() == old_metrics
    # The version the restore replaced is kept in turn: nothing was lost on either step.
    assert len(list_versions("cnn", dest)) == 1
    restore("cnn", root=dest)
    assert read_json(shipped / "metrics.json")["accuracy"] != 0.6562


def test_promote_from_the_cli_refuses_replaces_and_restores(tiny_run, tmp_path):
    dest = tmp_path / "trained"
    os.environ["FER_TRAINED_DIR"] = str(dest)  # the autouse fixture's monkeypatch restores it
    code, out, err = cli("promote", tiny_run, "--name", "cnn")
    assert code == 0, err
    fake_accuracy(dest / "cnn", 0.6562)
    code, out, err = cli("promote", tiny_run, "--name", "cnn")
    assert_one_line_error(code, err, "trained/cnn exists", "0.6562 on ", " PublicTest images", "--replace")
    code, out, err = cli("promote", tiny_run, "--name", "cnn", "--replace")
    assert code == 0, err
    code, out, err = cli("promote", "--list-versions", "cnn")
    assert code == 0 and "0.6562 on " in out and " PublicTest images" in out
    code, out, err = cli("promote", "--restore", "cnn")
    assert code == 0, err
    assert read_json(dest / "cnn" / "metrics.json")["accuracy"] == 0.6562
    code, out, err = cli("promote", "--restore", "nosuch")
    assert_one_line_error(code, err, "no kept versions of 'nosuch'")


KILL_MIDWAY = """
import os, signal, sys
import fer_core.artifacts
import fer_core.training.promote as runs
def killed(*args, **kwargs):  # the copy is made and compacted; killed while it is measured
    os.kill(os.getpid(), signal.SIGKILL)
fer_core.artifacts.load_model = killed
runs.promote(sys.argv[1], "cnn", dest_root=sys.argv[2], replace=True)
"""


def test_a_promote_killed_midway_leaves_the_old_model_intact(tiny_run, tmp_path):
    from fer_core.artifacts import list_trained, load_model

    dest = tmp_path / "trained"
    shipped = promote(tiny_run, "cnn", dest_root=dest)
    before = {p.relative_to(shipped): p.read_bytes() for p in shipped.rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(tiny_run), str(dest)], timeout=300)
    assert done.returncode == -9  # killed, as a user's Ctrl-\\ or an OOM kill would
    assert {p.relative_to(shipped): p.read_bytes() for p in shipped.rglob("*") if p.is_file()} == before
    os.environ["FER_TRAINED_DIR"] = str(dest)
    assert list_trained() == ["cnn"] and load_model(shipped).name == "cnn"
    assert list_versions("cnn", dest) == []  # nothing was replaced, so nothing needed keeping


def test_invalid_names_are_refused(tiny_run, tmp_path):
    for name in (".versions", "a/b", " cnn"):
        with pytest.raises(FerError, match="invalid model name"):
            promote(tiny_run, name, dest_root=tmp_path)


# ---- promotion from a run: atomic, compact, measured from the stored file ----


def test_promote_replaces_atomically_and_loads(tiny_run, tmp_path):
    from fer_core.artifacts import load_model, resolve_model

    dest = tmp_path / "trained"
    final = promote(tiny_run, "tiny", dest_root=dest)
    assert sorted(p.name for p in final.iterdir()) == [
        "MODEL_CARD.md",
        "config.json",
        "history.csv",
        "lineage",
        "metrics.json",
        "model.keras",
        "seen_images.npy",
    ]
    first_bytes = (final / "model.keras").read_bytes()
    promote(tiny_run, "tiny", dest_root=dest, replace=True)  # again: replaced, not duplicated
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".")] == ["tiny"]
    assert (final / "model.keras").read_bytes() == first_bytes
    os.environ["FER_TRAINED_DIR"] = str(dest)
    assert load_model(resolve_model("tiny")).name == "cnn"
    card = (final / "MODEL_CARD.md").read_text()
    assert "selected on **validation**" in card and "reported on **PublicTest**" in card
    assert "--model tiny" in card and "with flip TTA" in card and "with flip+zoom TTA" in card


def test_failed_promotion_keeps_the_shipped_model(tiny_run, tmp_path):
    dest = tmp_path / "trained"
    promote(tiny_run, "tiny", dest_root=dest)
    shipped = (dest / "tiny" / "model.keras").read_bytes()
    broken = tmp_path / "broken_run"
    broken.mkdir()
    for name in ("config.json", "history.csv", "metrics.json", "progress.json"):
        (broken / name).write_bytes((tiny_run / name).read_bytes())
    (broken / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(FerError, match="not a valid .keras file"):
        promote(broken, "tiny", dest_root=dest, replace=True)
    assert (dest / "tiny" / "model.keras").read_bytes() == shipped
    assert [p.name for p in dest.iterdir()] == ["tiny"]  # and no kept version: nothing was replaced


def test_a_promoted_model_is_compact_and_its_metrics_are_the_stored_files(tiny_run, folder_dataset, tmp_path):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate

    final = promote(tiny_run, "tiny", dest_root=tmp_path / "trained")
    assert (final / "model.keras").stat().st_size < (tiny_run / "model.keras").stat().st_size
    metrics = read_json(final / "metrics.json")
    again = evaluate([load_model(final)], load_dataset(folder_dataset), split=metrics["split"], names=["tiny"]).metrics
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["loss"] == pytest.approx(metrics["loss"], abs=1e-6)
    assert metrics["models"] == ["tiny"] and metrics["selection_split"] == "validation"


def test_promotion_without_the_data_keeps_nothing_half_done(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    config = read_json(copy / "config.json")
    (copy / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    with pytest.raises(FerError, match="is not here"):
        promote(copy, "tiny", dest_root=tmp_path / "trained")
    assert list((tmp_path / "trained").iterdir()) == []
    assert promote(copy, "tiny", dest_root=tmp_path / "trained", compact=False).is_dir()  # as trained, if asked


def test_the_model_card_names_the_gpu_a_run_trained_on(tiny_run, tmp_path):
    """A GPU run's environment lists its GPUs (none on this CPU), and the card says which."""
    import shutil

    from fer_core.backend import environment
    from fer_core.training.runs import read_run
    from fer_core.training.model_card import model_card

    assert "gpus" not in environment() and "tensorflow" in environment()  # the suite's CPU backend
    run = tmp_path / "gpu-run"
    shutil.copytree(tiny_run, run)
    progress = read_json(run / "progress.json")
    gpu_environment = {**progress["environment"], "backend": "jax", "jax": "0.11.2", "gpus": ["NVIDIA H200"]}
    (run / "progress.json").write_text(json.dumps({**progress, "backend": "jax", "environment": gpu_environment}))
    card = model_card(read_run(run))
    assert "Backend: jax; machine: GPU NVIDIA H200 with " in card and "jax 0.11.2" in card
    assert "GPU" not in model_card(read_run(tiny_run))


def test_a_promoted_model_carries_its_lineage_and_a_warm_start_inherits_it(tiny_run, tmp_path):
    """The records follow the weights: a model promoted from a run warm-started from another has
    the other's lineage, then its own run's records; the card names them."""
    import shutil

    from fer_core.training.promote import lineage_name
    from fer_core.training.runs import read_run

    dest = tmp_path / "trained"
    first = promote(tiny_run, "first", dest_root=dest)
    [entry] = list((first / "lineage").iterdir())
    info = read_run(tiny_run)
    assert entry.name == lineage_name(info.config, info.progress) and "-from-scratch-" in entry.name
    assert (entry / "history.csv").read_bytes() == (tiny_run / "history.csv").read_bytes()
    assert not (entry / "model.keras").exists()  # records, not models
    assert f"lineage/` ({entry.name})" in (first / "MODEL_CARD.md").read_text()

    # A run that warm-started from `first` (its records as such a run writes them, later).
    child = tmp_path / "child-run"
    shutil.copytree(tiny_run, child)
    config = read_json(child / "config.json")
    config["init_from"] = {"path": str(first / "model.keras"), "model": "cnn", "epochs": 2, "minutes": 0.1}
    (child / "config.json").write_text(json.dumps(config))
    progress = read_json(child / "progress.json")
    progress["started_at"] = "2030-01-02T03:04:05Z"
    (child / "progress.json").write_text(json.dumps(progress))
    second = promote(child, "second", dest_root=dest, compact=False)
    names = sorted(p.name for p in (second / "lineage").iterdir())
    assert names == [entry.name, lineage_name(config, progress)] and names[1].startswith("2030-01-02-0304-warm-start-")
    assert read_json(second / "lineage" / names[1] / "config.json")["init_from"]["path"] == str(first / "model.keras")

    # A run warm-started from `second` in the same minute with the same settings as `second`'s run:
    # its name is taken by the record it inherits, so its own is numbered on, and it is its model.
    grandchild = tmp_path / "grandchild-run"
    shutil.copytree(child, grandchild)
    config["init_from"]["path"] = str(second / "model.keras")
    (grandchild / "config.json").write_text(json.dumps(config))
    (grandchild / "progress.json").write_text(json.dumps({**progress, "started_at": "2030-01-02T03:04:50Z"}))
    third = promote(grandchild, "third", dest_root=dest, compact=False)
    lineage = sorted(p.name for p in (third / "lineage").iterdir())
    assert lineage == [*names, f"{names[1]}-2"]
    assert read_json(third / "lineage" / lineage[-1] / "progress.json")["started_at"] == "2030-01-02T03:04:50Z"
    with pytest.raises(FerError, match="is promoted already, as third"):
        promote(grandchild, dest_root=dest)


def test_accuracies_measured_on_different_sets_are_said_not_to_compare(tiny_run, tmp_path):
    from fer_core.training.promote import measured_on, replacement_summary

    shipped = promote(tiny_run, "cnn", dest_root=tmp_path / "trained")
    metrics = read_json(shipped / "metrics.json")
    (shipped / "metrics.json").write_text(json.dumps({**metrics, "accuracy": 0.6562, "n": 3589}))
    summary = replacement_summary(shipped, tiny_run)
    assert summary.startswith("cnn 0.6562 on 3,589 PublicTest images now; this run ")
    assert f"on {read_json(tiny_run / 'metrics.json')['n']:,} PublicTest images" in summary
    assert summary.endswith("(measured on different sets: the two numbers do not compare)")
    (shipped / "metrics.json").unlink()
    assert measured_on(shipped) == "not measured"
