"""What every page needs: the dataset path, cached loads of data and models (named by
`fer_core.artifacts.ModelRef`), model pickers.

Only widgets and caching live here; the work itself is fer_core's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlparse

import streamlit as st

from fer_core.errors import FerError
from dashboard.text import said

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Beside a checkout, the shared copy of FER2013 is the natural default.
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "fer2013"
ICON = Path(__file__).with_name("icon.png")  # the tab's icon (drawn for this project)


def free_session_on_close() -> None:
    """Have Streamlit release this tab's uploads, images and results as soon as its connection goes.

    By default a disconnected session is kept for a reconnect (server.disconnectedSessionTTL), and
    one that expires there is dropped without being shut down: its uploaded files and media stay
    in the server for good (Streamlit 1.67; measured by tools/soak_dashboard.py, which grew by
    each closed tab). A session marked non-resumable is shut down at disconnect instead; the cost
    is that a tab whose connection drops starts a fresh session (its uploads are asked for again).
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    if context is not None and Runtime.exists():
        Runtime.instance().mark_session_nonresumable(context.session_id)


def default_data_path() -> str:
    configured = os.environ.get("FER_DATA", "").strip()
    if configured:
        return configured
    return str(DEFAULT_DATA) if DEFAULT_DATA.exists() else ""


def data_path_widget() -> str:
    """The sidebar's dataset path field. Rendered by app.py on every run, so its value survives
    page switches (a widget that only some pages render loses its state on the others)."""
    if "data_path" not in st.session_state:  # a new session: a reload or a dropped connection
        st.session_state["data_path"] = st.query_params.get("data") or default_data_path()
        if st.query_params.get("subjects"):
            st.session_state["subject_patterns"] = {
                dataset_key(st.session_state["data_path"]): st.query_params["subjects"]
            }
    if "next_data_path" in st.session_state:  # a page chose a dataset (the field cannot be set once drawn)
        st.session_state["data_path"] = st.session_state.pop("next_data_path")
    path = st.sidebar.text_input(
        "Dataset (a folder or CSV)",
        key="data_path",
        help="FER2013 (its train/ and test/ folders, or fer2013.csv), or your own: a folder of class folders "
        "(with or without train/ val/ test/), or a CSV of label,path or label,pixels",
    ).strip()
    _stored_datasets()
    remember_in_url()
    return path


def dataset_key(path) -> str:
    return str(Path(str(path)).expanduser().resolve())


def remember_in_url() -> None:
    """The dataset and its subject pattern in the address (?data=...&subjects=...): a session
    is not kept across a dropped connection (free_session_on_close) or a reload, the address is.
    Set on every run, before the page and after it: a page switch starts from a bare address."""
    path = data_path()
    wanted = {}
    if path and path != default_data_path():
        wanted["data"] = path
    pattern = st.session_state.get("subject_patterns", {}).get(dataset_key(path)) if path else None
    if pattern:
        wanted["subjects"] = pattern
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _stored_datasets() -> None:
    """Under the path field: the datasets brought through the Dataset page, by name."""
    from fer_core.data.store import list_datasets

    stored = list_datasets()
    if not stored:
        return
    by_path = {str(path): name for name, path in stored.items()}
    current = by_path.get(st.session_state.get("data_path", ""), "")

    def chosen():
        name = st.session_state["stored_dataset"]
        if name:
            st.session_state["data_path"] = str(stored[name])

    st.sidebar.selectbox(
        "Or one of your datasets",
        ["", *stored],
        index=["", *stored].index(current),
        key="stored_dataset",
        format_func=lambda name: name or "(the path above)",
        on_change=chosen,
    )


def _name_in_sidebar(dataset) -> None:
    """Under the dataset field: the dataset's name and classes (what the page in front shows)."""
    st.sidebar.caption(f"**{Path(dataset.root).name}**: {len(dataset.classes)} classes ({', '.join(dataset.classes)})")


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
        st.info("No dataset configured: enter the path of a dataset folder or CSV in the sidebar (or set FER_DATA).")
        st.stop()
    dataset = _datasets.get(path)
    if dataset is not None:
        _name_in_sidebar(dataset)
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
        st.error(said(exc))
        st.stop()
    bar.empty()
    _name_in_sidebar(dataset)
    return dataset


def load_model(ref):
    """A saved model (a `ModelRef`) loaded once per server and file version, shared across
    sessions (inference is thread-safe)."""
    return _load_model(str(ref.model_file), ref.version)


@st.cache_resource(show_spinner="Loading model...", max_entries=8)
def _load_model(model_file: str, version):  # version is in the cache key (no leading underscore)
    from fer_core.artifacts import load_model as load

    return load(model_file)


def classifier(refs):
    """The fast classifier of one model or the ensemble of several (ModelRefs), built once per
    server and file versions."""
    return _classifier(tuple(str(r.model_file) for r in refs), tuple(r.version for r in refs), tuple(refs))


@st.cache_resource(show_spinner=False, max_entries=8)
def _classifier(model_files: tuple[str, ...], versions, _refs):
    from fer_core.artifacts import shared_classes
    from fer_core.inference import Classifier

    return Classifier([load_model(r) for r in _refs], classes=shared_classes(_refs))


@st.cache_resource(show_spinner=False)
def face_detector(name: str, live: bool = False):
    """Shared across sessions: every detector is safe to call from several threads at once."""
    from fer_core.inference import make_detector

    return make_detector(name, live=live)


def make_recognizer(models, detector_name: str, **options):
    """The chosen models (ModelRefs) with the chosen detector, their cached classifier and detector
    shared with every session; `options` as `Recognizer` takes them (tta, min_face). A model that
    cannot be used is an error box, and the page stops."""
    from fer_core.recognizer import Recognizer

    try:
        return Recognizer(list(models), detector=face_detector(detector_name), classifier=classifier(models), **options)
    except FerError as exc:
        st.error(said(exc))
        st.stop()


def png_bytes(rgb) -> bytes:
    """An RGB image as PNG file bytes, for a download button."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return encoded.tobytes()


def detector_picker(container=st, key: str = "detector") -> str:
    """The face detector by name, the default (the most accurate) first."""
    from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS

    names = [DEFAULT_DETECTOR, *(n for n in DETECTORS if n != DEFAULT_DETECTOR)]
    return container.selectbox(
        "Face detector",
        names,
        key=key,
        help=(
            "retinaface: a neural network trained on crowds, finds the most faces (close, small, cut by the "
            "edge) and no phantoms, and the fastest on a photo; blazeface: a smaller one; haar: OpenCV's "
            "cascade, misses turned faces"
        ),
    )


def models_or_stop(include_runs: bool = True):
    """The saved models a page can use (ModelRefs); stops the page with a hint when there are none."""
    from fer_core.artifacts import saved_models
    from fer_core.training.runs import models_and_runs

    refs = models_and_runs() if include_runs else saved_models()
    if not refs:
        st.info("No trained models or finished runs yet: train one on the Train page.")
        st.stop()
    return refs


def by_accuracy(refs) -> list[str]:
    """Model names as pages offer them by default: the default model, then the others measured on
    its dataset best first, then the other datasets' (accuracies never ranked across datasets)."""
    from fer_core.catalog import default_model, models_by_dataset

    refs = list(refs)
    default = default_model(refs)
    groups = list(models_by_dataset(refs).values())
    groups.sort(key=lambda members: default is None or default.name not in {ref.name for ref in members})
    names = [ref.name for members in groups for ref in members]
    if default is not None:
        names.remove(default.name)
        names.insert(0, default.name)
    return names


def model_picker(container) -> tuple:
    """The Predict, Video and Live pages' model box: trained models (else finished runs), plus the
    ensemble of the default model's dataset when it has several; the default model is preselected.
    Stops the page with a hint when there is no model. Returns the chosen ModelRefs."""
    from fer_core.artifacts import saved_models
    from fer_core.catalog import default_model, model_dataset

    refs = saved_models() or models_or_stop()
    by_name = {ref.name: ref for ref in refs}
    default = default_model(refs)
    # The ensemble: the models measured on the default's dataset, with its classes (averaging
    # needs the same classes; comparing needs the same data).
    home = model_dataset(default)  # read once: each ref's records are files read on every rerun
    members = tuple(ref for ref in refs if model_dataset(ref).key == home.key)
    ensemble = f"ensemble of the {len(members)} {home.name} models"
    options = by_accuracy(refs) + ([ensemble] if len(members) > 1 else [])
    chosen = container.selectbox(
        "Model", options, index=0, help=f"The default is {default.name} (fer-core default, or Home's Use as default)"
    )
    return members if chosen == ensemble else (by_name[chosen],)


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def tta_picker(container) -> str:
    """Test-time augmentation, one of fer_core.inference.TTA_MODES (Evaluate and Predict)."""
    from fer_core.inference import TTA_MODES

    return container.selectbox(
        "Test-time augmentation",
        TTA_MODES,
        help="Average each face's probabilities with its mirror image's (flip), and also with its "
        "44- and 40-px centre crops scaled back and their mirrors (flip+zoom): 2 or 6 times the work",
    )


def insecure_camera_host(url: str | None) -> str | None:
    """The host name when `url` is plain HTTP on a host other than this machine, else None."""
    parsed = urlparse(url or "")
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "http" and host and host not in LOCAL_HOSTS and not host.endswith(".localhost"):
        return host
    return None


def metrics_styler(rows, four_decimals: tuple[str, ...]):
    """Model metrics as a styled table: the named columns to four decimals (how Home and Evaluate
    show accuracies, so the same model reads the same on both), other numbers as short as they
    are, and a dash where a number is not known (the paper gives no macro-F1) rather than
    "None". Complete columns stay numbers (they sort as numbers); a column with a gap becomes
    its text, since the table draws any missing value as "None" whatever the style says."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    formats = {column: "{:.4f}" for column in four_decimals if column in frame.columns}
    for column in frame.columns:
        if column not in formats and pd.api.types.is_float_dtype(frame[column]):
            formats[column] = "{:g}"
    for column in frame.columns:
        if frame[column].isna().any():
            shown = formats.pop(column, "{}")
            frame[column] = [
                "–" if value is None or (isinstance(value, float) and value != value) else shown.format(value)
                for value in frame[column]
            ]
    return frame.style.format(formats)


def metrics_table(rows, four_decimals: tuple[str, ...]) -> None:
    """`metrics_styler`'s table on the page."""
    st.dataframe(metrics_styler(rows, four_decimals), hide_index=True)
