"""Train: launch `fer-core train` as its own process, watch it live, stop it, promote it.

The page only reads the run directory; the training process is the only writer. A rerun, a
reload or another tab never touches the process.
"""

import streamlit as st

from dashboard.crossval_views import launch_crossval_button, show_crossval
from dashboard.run_list import listing, training_table, watch, watched
from dashboard.run_views import promote_form, restore_form, show_run
from dashboard.shared import data_path
from dashboard.train_form import settings_form
from fer_core.errors import FerError
from fer_core.paths import runs_dir
from fer_core.training.config import TrainConfig
from fer_core.training.estimate import estimate_run
from fer_core.training.launch import launch
from dashboard.text import said

st.title("Train")


@st.cache_data(ttl=300, show_spinner=False)
def split_counts(path: str) -> dict[str, int]:
    """Counting 36,000 files takes seconds the first time: once per dataset path and 5 minutes."""
    from fer_core.data import split_counts as count

    return count(path)


settings = settings_form(data_path())
try:
    config = TrainConfig(**settings)
    # Recorded speeds are read each time: a run that just finished changes the estimate.
    length = estimate_run(config, counts=split_counts(config.data) if config.data else None)
except FerError as exc:
    config, length = None, None
    st.error(said(exc))
if length is not None:
    st.caption(f"Estimated length: {length.describe(config.epochs)}.")
    if not config.minutes and (length.minutes is None or length.minutes > 60):
        st.warning(
            "No time budget: "
            + (
                f"this run would take about {length.minutes / 60:.1f} hours here. "
                if length.minutes
                else "how long this run takes here is not known yet. "
            )
            + "Set a time budget to bound it (the best model is kept), or fewer images per split for a trial."
        )
mode = st.radio("Launch", ["one run", "a cross-validation"], horizontal=True, key="launch_mode")
if mode == "one run":
    if st.button("Launch", type="primary", disabled=config is None, key="launch"):
        try:
            launched = launch(config)
            watch(launched)
            st.success(f"Launched: {launched}")
        except FerError as exc:
            st.error(said(exc))
else:
    folds = int(st.number_input("Folds", min_value=2, max_value=20, value=5, step=1, key="folds"))
    if config is not None:
        whole = estimate_run(config, counts=split_counts(config.data), folds=folds)
        st.caption(f"A run a fold, each tested on the images it left out; estimated {whole.describe(config.epochs)}.")
    launch_crossval_button(config, folds)


st.subheader("Runs and cross-validations")
listed = listing()
# Polled every 2 s while anything trains; otherwise rendered once.
poll = 2.0 if listed.busy else None
if listed.runs or listed.crossvals:
    st.fragment(run_every=poll)(training_table)()
else:
    st.caption(f"No runs or cross-validations in {runs_dir()} yet. Launch one above.")
shown = watched(listed)
if shown is not None:
    kind, folder = shown
    view = show_run if kind == "run" else show_crossval
    st.fragment(run_every=poll)(view)(folder)
finished = [r.name for r in listed.runs if not r.active and (r.path / "model.keras").is_file()]
if finished:
    st.subheader("Promote")
    promote_form(finished)
restore_form()
