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
from fer_core.fileio import read_json
from fer_core.training.promote import list_versions, promote, restore
from helpers import assert_one_line_error, run_cli

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
    assert "trained/cnn exists" in line and "0.6562 on PublicTest" in line and "--replace" in line
    assert "\n" not in line
    assert (shipped / "model.keras").read_bytes() == before
    # No name given, and trained/cnn exists: a new, dated name.
    second = promote(tiny_run, dest_root=dest)
    assert second.name.startswith("cnn-") and second.name != "cnn"
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(["cnn", second.name])
    assert (shipped / "model.keras").read_bytes() == before


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
    code, out, err = run_cli("promote", tiny_run, "--name", "cnn")
    assert code == 0, err
    fake_accuracy(dest / "cnn", 0.6562)
    code, out, err = run_cli("promote", tiny_run, "--name", "cnn")
    assert_one_line_error(code, err, "trained/cnn exists", "0.6562 on PublicTest", "--replace")
    code, out, err = run_cli("promote", tiny_run, "--name", "cnn", "--replace")
    assert code == 0, err
    code, out, err = run_cli("promote", "--list-versions", "cnn")
    assert code == 0 and "0.6562 on PublicTest" in out
    code, out, err = run_cli("promote", "--restore", "cnn")
    assert code == 0, err
    assert read_json(dest / "cnn" / "metrics.json")["accuracy"] == 0.6562
    code, out, err = run_cli("promote", "--restore", "nosuch")
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
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    done = subprocess.run([sys.executable, "-c", KILL_MIDWAY, str(tiny_run), str(dest)], timeout=300)
    assert done.returncode == -9  # killed, as a user's Ctrl-\\ or an OOM kill would
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    os.environ["FER_TRAINED_DIR"] = str(dest)
    assert list_trained() == ["cnn"] and load_model(shipped).name == "cnn"
    assert list_versions("cnn", dest) == []  # nothing was replaced, so nothing needed keeping


def test_invalid_names_are_refused(tiny_run, tmp_path):
    for name in (".versions", "a/b", " cnn"):
        with pytest.raises(FerError, match="invalid model name"):
            promote(tiny_run, name, dest_root=tmp_path)
