"""Integration on the real FER2013 in ../shared/fer2013, when it is present (skipped otherwise)."""

from __future__ import annotations

import json

import pytest

from helpers import SHARED_DATA
from helpers import run_cli

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def fer2013_cache(tmp_path_factory):
    """One cache folder for this module's tests (never the user's): FER2013 is decoded from its
    32,000 JPEGs once (`stats`, which decodes them, took 14-17 s on the 2-core CPU), and every later load here, the CLI's included,
    reads the decoded copy, as a user's second command does."""
    return tmp_path_factory.mktemp("fer2013_cache")


@pytest.fixture(autouse=True)
def shared_cache(fer2013_cache, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(fer2013_cache))


# ../shared/fer2013/README.md's table.
EXPECTED = {
    "Training": {
        "angry": 3995,
        "disgust": 436,
        "fear": 4097,
        "happy": 7215,
        "sad": 4830,
        "surprise": 3171,
        "neutral": 4965,
    },
    "PublicTest": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "sad": 653, "surprise": 415, "neutral": 607},
}


def test_stats_on_fer2013():
    code, out, err = run_cli("stats", "--data", SHARED_DATA, "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["splits"] == EXPECTED
    assert stats["totals"] == {"Training": 28709, "PublicTest": 3589}
    assert stats["imbalance"]["smallest"] == "disgust"
    assert stats["blank"]["count"] > 0  # FER2013 has a few all-one-colour images


def test_limited_train_then_evaluate_on_fer2013(tmp_path):
    code, out, err = run_cli(
        "train",
        "--model",
        "cnn",
        "--data",
        SHARED_DATA,
        "--limit",
        "256",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--run-dir",
        tmp_path / "run",
        "--quiet",
    )
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "finished"
    code, out, err = run_cli(
        "evaluate", "--model", tmp_path / "run", "--data", SHARED_DATA, "--split", "PublicTest", "--json"
    )
    assert code == 0, err
    metrics = json.loads(out)
    # FER2013's PublicTest repeats some Training faces pixel for pixel: those of the 256 a class
    # it trained on are left out, and said.
    left_out = 3589 - metrics["n"]
    assert 0 < left_out < 60
    assert f"{left_out} of the 3,589 images of PublicTest are faces it trained or selected on" in err
    supports = [metrics["per_class"][c]["support"] for c in EXPECTED["PublicTest"]]
    assert sum(supports) == metrics["n"]
    assert all(0 <= expected - got <= left_out for got, expected in zip(supports, EXPECTED["PublicTest"].values()))
    matrix = metrics["confusion_matrix"]
    assert sum(matrix[i][i] for i in range(7)) / metrics["n"] == pytest.approx(metrics["accuracy"])


def _shipped_models() -> list[str]:
    from fer_core.artifacts import list_trained
    from fer_core.paths import trained_dir

    return [name for name in list_trained() if (trained_dir() / name / "metrics.json").is_file()]


@pytest.fixture(scope="module")
def fer2013(fer2013_cache):
    from fer_core.data import load_dataset

    with pytest.MonkeyPatch.context() as patch:  # module fixtures run before the autouse one
        patch.setenv("FER_CACHE_DIR", str(fer2013_cache))
        return load_dataset(SHARED_DATA)


@pytest.mark.parametrize("name", _shipped_models())
def test_shipped_model_reproduces_its_metrics(name, fer2013, monkeypatch):
    """Every number the product shows comes from saved artifacts: reloading trained/<name> and
    evaluating it again gives its metrics.json (same predictions, so the same confusion matrix)."""
    from fer_core.artifacts import load_model, resolve_model
    from fer_core.paths import trained_dir
    from fer_core.evaluation import evaluate
    from fer_core.evaluation.unseen import unseen_by
    from fer_core.fileio import read_json

    monkeypatch.delenv("FER_TRAINED_DIR", raising=False)
    saved = read_json(trained_dir() / name / "metrics.json")
    # Less the 280 PublicTest faces that are pixel copies of Training faces, which it learned.
    view, split, _note = unseen_by(resolve_model(name), fer2013, saved["split"])
    result = evaluate([load_model(name)], view, split=split, tta=saved.get("tta", False), names=[name])
    assert result.metrics["n"] == saved["n"] == 3589 - saved["left_out_learned"] == 3309
    assert result.metrics["confusion_matrix"] == saved["confusion_matrix"]
    assert result.metrics["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    assert result.metrics["loss"] == pytest.approx(saved["loss"], abs=1e-4)
