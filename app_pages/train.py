"""Train: launch `fer-core train` as its own process, watch it live, stop it, promote it.

The page only reads the run directory; the training process is the only writer. A rerun, a
reload or another tab never touches the process.
"""

import streamlit as st

from dashboard.crossval_views import current_crossval, launch_crossval_button, show_crossval
from dashboard.run_views import promote_form, restore_form, runs_table, show_run
from dashboard.shared import data_path
from dashboard.train_form import settings_form
from fer_core.errors import FerError
from fer_core.paths import runs_dir
from fer_core.training.config import TrainConfig
from fer_core.training.crossval_runs import crossval_progress
from fer_core.training.estimate import estimate_run
from fer_core.training.launch import launch
from fer_core.training.runs import list_runs
from fer_core.words import sentence

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
    st.error(sentence(exc))
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
            st.session_state["run_dir"] = str(launch(config))
            st.success(f"Launched: {st.session_state['run_dir']}")
        except FerError as exc:
            st.error(sentence(exc))
else:
    folds = int(st.number_input("Folds", min_value=2, max_value=20, value=5, step=1, key="folds"))
    if config is not None:
        whole = estimate_run(config, counts=split_counts(config.data), folds=folds)
        st.caption(f"A run a fold, each tested on the images it left out; estimated {whole.describe(config.epochs)}.")
    launch_crossval_button(config, folds)


# The run to show: the one training now, else the one this session launched or picked, else the
# newest on disk, so a reload or a new tab lands on the same run.
runs = list_runs()  # newest first
running = next((r for r in runs if r.active), None)
current = str(running.path) if running else st.session_state.get("run_dir") or (str(runs[0].path) if runs else None)
# Poll the run's files every 2 s while one trains; otherwise render once.
poll = 2.0 if running is not None else None

st.subheader("Current run")
if current:
    st.fragment(run_every=poll)(show_run)(current)
else:
    st.caption("No run yet in this session. Launch one above.")

cv = current_crossval()
if cv:
    st.subheader("Cross-validation")
    busy = crossval_progress(cv).status in ("running", "stopping")
    st.fragment(run_every=2.0 if busy else None)(show_crossval)(cv)

st.subheader("Past runs")
if runs:
    st.fragment(run_every=poll)(runs_table)()
    finished = [r.name for r in runs if not r.active and (r.path / "model.keras").is_file()]
    if finished:
        promote_form(finished)
else:
    st.caption(f"No runs in {runs_dir()}.")
restore_form()
