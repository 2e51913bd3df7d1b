"""Shared fixtures: small FER-like datasets made on the fly, isolated caches/runs/trained dirs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before any test imports TensorFlow: the dashboard's pages (run in this process by AppTest) need
# pylibsrtp loaded first, see app_pages/__init__.py.
import app_pages  # noqa: E402,F401
from fer_core import CLASS_NAMES  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "fer2013"
PER_CLASS = 6  # images per class per split in the synthetic folder dataset


def synthetic_face(label: int, index: int, size: int = 48) -> np.ndarray:
    """A face-like 48x48 uint8 image whose class is learnable: a bright bar at a class-specific row."""
    rng = np.random.default_rng(1000 * label + index)
    yy, xx = np.mgrid[0:size, 0:size]
    face = 90 + 60 * np.exp(-(((xx - size / 2) / (size / 3)) ** 2 + ((yy - size / 2) / (size / 2.4)) ** 2))
    face += rng.normal(0, 12, (size, size))
    row = 6 + label * 5
    face[row : row + 3, 8:40] = 235
    return np.clip(face, 0, 255).astype(np.uint8)


def write_folder_dataset(root: Path, per_class: int = PER_CLASS, prefixes: bool = True,
                         class_folders=CLASS_NAMES, splits=(("train", "Training"), ("test", "PublicTest"))) -> Path:
    import cv2

    for folder, usage in splits:
        for label, name in enumerate(class_folders):
            target = root / folder / name
            target.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                stem = f"{usage}_{label * 100 + i}" if prefixes else f"img_{label * 100 + i}"
                cv2.imwrite(str(target / f"{stem}.png"), synthetic_face(CLASS_NAMES.index(name) if name in CLASS_NAMES else label, i + (0 if usage == "Training" else 50)))
    return root


def csv_text(rows, header="emotion,pixels,Usage") -> str:
    lines = [header]
    for label, pixels, usage in rows:
        lines.append(f"{label},{' '.join(str(int(v)) for v in np.ravel(pixels))},{usage}")
    return "\n".join(lines) + "\n"


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
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for label in range(len(CLASS_NAMES)):
            for i in range(4):
                rows.append((label, synthetic_face(label, i), usage))
    path = tmp_path_factory.mktemp("fer_csv") / "fer2013.csv"
    path.write_text(csv_text(rows))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, folder_dataset) -> Path:
    """A real finished training run (cnn, 2 epochs on the synthetic folder), shared by tests."""
    from fer_core.data import load_dataset
    from fer_core.training import TrainConfig, train

    base = tmp_path_factory.mktemp("tiny_run")
    os.environ["FER_CACHE_DIR"] = str(base / "cache")
    # float32 whatever the processor ("auto" would pick bf16 on some), so the suite computes alike everywhere.
    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=2, batch_size=16, seed=3, precision="float32",
                         model_params={"filters": [8, 16, 32], "dense_units": 32})
    dataset = load_dataset(folder_dataset, use_cache=False)
    return train(config, out=base / "runs", dataset=dataset, echo=False)


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is not present")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)
