"""Shared fixtures: small FER-like datasets made on the fly, isolated caches/runs/trained dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before any test imports TensorFlow: the dashboard's pages (run in this process by AppTest) need
# pylibsrtp loaded first, see dashboard/__init__.py.
import dashboard  # noqa: E402,F401
from fer_core import CLASS_NAMES  # noqa: E402
from helpers import SHARED_DATA, csv_text, synthetic_face, tiny_config, write_folder_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, runs and trained folders: nothing touches the user's."""
    base = tmp_path_factory.mktemp("fer_env")
    monkeypatch.setenv("FER_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("FER_RUNS_DIR", str(base / "runs"))
    monkeypatch.setenv("FER_TRAINED_DIR", str(base / "trained"))
    return base


@pytest.fixture(scope="session")
def folder_dataset(tmp_path_factory) -> Path:
    return write_folder_dataset(tmp_path_factory.mktemp("fer_folder") / "fer")


@pytest.fixture(scope="session")
def csv_dataset(tmp_path_factory) -> Path:
    rows = []
    for number, usage in enumerate(("Training", "PublicTest", "PrivateTest")):
        for label in range(len(CLASS_NAMES)):
            for i in range(4):  # other faces in each split: a copy across splits is a face learned
                rows.append((label, synthetic_face(label, i + 50 * number), usage))
    path = tmp_path_factory.mktemp("fer_csv") / "fer2013.csv"
    path.write_text(csv_text(rows))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, folder_dataset) -> Path:
    """A real finished training run (cnn, 2 epochs on the synthetic folder), shared by tests."""
    from fer_core.data import load_dataset
    from fer_core.training.loop import train

    base = tmp_path_factory.mktemp("tiny_run")
    os.environ["FER_CACHE_DIR"] = str(base / "cache")
    config = tiny_config(folder_dataset, epochs=2, batch_size=16, seed=3)
    dataset = load_dataset(folder_dataset, use_cache=False)
    return train(config, out=base / "runs", dataset=dataset, echo=False)


# Fixtures that train a model (seconds each on the 2-core CPU): a test using one, even through
# another fixture, trains and is slow whatever its own body does. Tests that train in their own
# body carry @pytest.mark.trains (`make test-fast` runs neither).
TRAINING_FIXTURES = {"tiny_run", "tiny_attention_run", "ck_crossval"}
# Fixtures that open the dashboard on trained models: slow.
SLOW_FIXTURES = TRAINING_FIXTURES | {"dashboard"}


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is not present")
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if TRAINING_FIXTURES & fixtures:
            item.add_marker(pytest.mark.trains)
        if SLOW_FIXTURES & fixtures or "trains" in item.keywords:
            item.add_marker(pytest.mark.slow)
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip)


@pytest.fixture(scope="module")
def playwright():
    from chromium import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as instance:  # one per thread: every browser of a module comes from it
        yield instance


@pytest.fixture(scope="module")
def browser(playwright):
    from chromium import CHROMIUM, CHROMIUM_ARGS

    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
