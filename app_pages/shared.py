"""What every page needs: the dataset path, cached loads of data and models, model choices.

Only widgets and caching live here; the work itself is fer_core's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import streamlit as st

from fer_core.errors import FerError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Beside a checkout, the shared copy of FER2013 is the natural default.
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "fer2013"


def default_data_path() -> str:
    configured = os.environ.get("FER_DATA", "").strip()
    if configured:
        return configured
    return str(DEFAULT_DATA) if DEFAULT_DATA.exists() else ""


def data_path_widget() -> str:
    """The sidebar's dataset path field. Rendered by app.py on every run, so its value survives
    page switches (a widget that only some pages render loses its state on the others)."""
    if "data_path" not in st.session_state:
        st.session_state["data_path"] = default_data_path()
    return st.sidebar.text_input(
        "FER2013 folder or CSV", key="data_path", help="The image-folder layout (train/, test/) or fer2013.csv"
    ).strip()


def data_path() -> str:
    """The dataset path the sidebar holds."""
    return str(st.session_state.get("data_path") or default_data_path()).strip()


# The loaded dataset, shared by every session of this server. Not st.cache_resource: the first
# load drives a progress bar, and Streamlit forbids updating an element created outside a
# cached function from inside it. One dataset is kept (the full FER2013 is ~75 MB).
_datasets: dict[str, object] = {}
_datasets_lock = threading.Lock()


def dataset_or_stop():
    """The loaded dataset, with a progress bar on the first load; stops the page with a message otherwise."""
    path = data_path()
    if not path:
        st.info("No dataset configured: enter the path of a FER2013 folder or CSV in the sidebar (or set FER_DATA).")
        st.stop()
    dataset = _datasets.get(path)
    if dataset is not None:
        return dataset
    bar = st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Loading {path}: {done:,} / {total:,} images")

    from fer_core.data import load_dataset

    try:
        with _datasets_lock:
            dataset = _datasets.get(path) or load_dataset(path, progress=progress)
            _datasets.clear()
            _datasets[path] = dataset
    except FerError as exc:
        bar.empty()
        st.error(str(exc))
        st.stop()
    bar.empty()
    return dataset


def file_version(path: str) -> tuple[int, int] | None:
    """(mtime, size) of a file: part of a cache key, so that a model promoted or retrained to the
    same path while the server runs is loaded again rather than served from the old entry."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def load_model(model_file: str):
    """A model loaded once per server and file version, shared across sessions (inference is thread-safe)."""
    return _load_model(model_file, file_version(model_file))


@st.cache_resource(show_spinner="Loading model...", max_entries=8)
def _load_model(model_file: str, version):  # version is in the cache key (no leading underscore)
    from fer_core.artifacts import load_model as load

    return load(model_file)


def classifier(model_files: tuple[str, ...]):
    return _classifier(model_files, tuple(file_version(f) for f in model_files))


@st.cache_resource(show_spinner=False, max_entries=8)
def _classifier(model_files: tuple[str, ...], versions):
    from fer_core.inference import Classifier

    return Classifier([load_model(f) for f in model_files])


@st.cache_resource(show_spinner=False)
def face_detector(scale_factor: float = 1.1):
    """Shared across sessions: the detector keeps one cascade per thread."""
    from fer_core.inference import FaceDetector

    return FaceDetector(scale_factor=scale_factor)


def model_choices(include_runs: bool = True) -> dict[str, str]:
    """Label -> model file, for trained models and (optionally) runs with a best model."""
    from fer_core.artifacts import list_trained, resolve_model
    from fer_core.runs import list_runs

    choices = {}
    for name in list_trained():
        choices[name] = str(resolve_model(name).model_file)
    if include_runs:
        for run in list_runs():
            if (run.path / "model.keras").is_file() and not run.active:
                choices[f"run {run.name}"] = str(run.path / "model.keras")
    return choices


ENSEMBLE = "ensemble of all trained models"


def model_picker(container) -> tuple[str, ...]:
    """The Predict and Live pages' model box: trained models (else runs), plus the ensemble of all
    when there are several. Stops the page with a hint when there is no model. Returns the files."""
    choices = model_choices(include_runs=False) or model_choices()
    if not choices:
        st.info("No trained models yet: train one on the Train page and promote it.")
        st.stop()
    options = list(choices) + ([ENSEMBLE] if len(choices) > 1 else [])
    chosen = container.selectbox("Model", options)
    return tuple(choices.values()) if chosen == ENSEMBLE else (choices[chosen],)


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def insecure_camera_host(url: str | None) -> str | None:
    """The host name when `url` is plain HTTP on a host other than this machine, else None."""
    parsed = urlparse(url or "")
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "http" and host and host not in LOCAL_HOSTS and not host.endswith(".localhost"):
        return host
    return None
