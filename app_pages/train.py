"""Train: launch `fer-core train` as its own process, watch it live, stop it, promote it.

The page only reads the run directory; the training process is the only writer. A rerun, a
reload or another tab never touches the process.
"""

import streamlit as st

from fer_core.artifacts import list_trained
from fer_core.errors import FerError
from fer_core.models import list_models
from fer_core.paths import runs_dir, trained_dir
from fer_core.rundir import read_history
from fer_core.training.estimate import estimate_run
from fer_core.training.runs import list_runs, progress_view, read_run, request_stop, run_log
from fer_core.training.promote import default_promote_name, list_versions, promote, replacement_summary, restore
from fer_core.training.launch import launch
from fer_core.training.config import TrainConfig
from dashboard.charts import history_curves
from dashboard.shared import data_path

st.title("Train")
dataset_path = data_path()
paper = TrainConfig()


def settings_form() -> dict:
    """The launch settings (TrainConfig checks them). Plain widgets, not a form: the estimate
    below follows every change before anything is launched."""
    with st.container(border=True):
        # Three columns a row: labels stay whole at 800 px with the sidebar open.
        c1, c2, c3 = st.columns(3)
        model = c1.selectbox("Model", list_models())
        minutes = c2.number_input(
            "Time budget (minutes, 0 = none)",
            value=0.0,
            min_value=0.0,
            step=5.0,
            help="The run ends by itself when the time is spent, keeping its best model; "
            "a cosine or linear schedule then decays over the budget",
        )
        epochs = c3.number_input("Epochs", value=paper.epochs, step=1, help="A cap when a time budget is set")
        c1, c2, c3 = st.columns(3)
        limit = c1.number_input(
            "Images per split (0 = all)",
            value=0,
            min_value=0,
            step=100,
            help="Quick trials on the first N images of each split",
        )
        batch_size = c2.number_input("Batch size", value=paper.batch_size, step=1)
        learning_rate = c3.number_input("Learning rate", value=paper.learning_rate, format="%.5f", step=1e-4)
        with st.expander("Recipe: schedule, regularisation, augmentation, precision (the paper's by default)"):
            c1, c2, c3 = st.columns(3)
            lr_schedule = c1.selectbox("LR schedule", TrainConfig.OPTIONS["lr_schedule"])
            patience = c2.number_input("Early-stopping patience (0 = off)", value=paper.patience, step=1)
            label_smoothing = c3.number_input("Label smoothing", value=paper.label_smoothing, step=0.05)
            c1, c2, c3 = st.columns(3)
            class_weights = c1.selectbox("Class weights", TrainConfig.OPTIONS["class_weights"])
            seed = c2.number_input("Seed", value=paper.seed, step=1)
            precision = c3.selectbox(
                "Precision",
                TrainConfig.OPTIONS["precision"],
                help="auto: mixed_bfloat16 on a GPU or a CPU with BF16 instructions, else float32",
            )
            c1, c2, c3 = st.columns(3)
            rotation = c1.number_input("Rotation (degrees)", value=paper.rotation_degrees, step=1.0)
            zoom = c2.number_input("Zoom", value=paper.zoom, step=0.05)
            shift = c3.number_input("Shift", value=paper.shift, step=0.05)
            c1, c2, c3 = st.columns(3)
            erasing = c1.number_input("Random erasing", value=paper.erasing, step=0.05)
            flip = c2.checkbox("Horizontal flip", value=paper.flip)
    return dict(
        model=model,
        data=dataset_path,
        epochs=int(epochs),
        minutes=float(minutes) or None,
        batch_size=int(batch_size),
        learning_rate=float(learning_rate),
        lr_schedule=lr_schedule,
        patience=int(patience),
        label_smoothing=float(label_smoothing),
        class_weights=class_weights,
        flip=flip,
        rotation_degrees=float(rotation),
        zoom=float(zoom),
        shift=float(shift),
        erasing=float(erasing),
        limit=int(limit) or None,
        seed=int(seed),
        precision=precision,
    )


@st.cache_data(ttl=300, show_spinner=False)
def split_counts(path: str) -> dict[str, int]:
    """Counting 36,000 files takes seconds the first time: once per dataset path and 5 minutes."""
    from fer_core.data import split_counts as count

    return count(path)


def estimate(settings: dict):
    """Recorded speeds are read each time: a run that just finished changes the estimate."""
    config = TrainConfig(**settings)
    return estimate_run(config, counts=split_counts(config.data) if config.data else None)


settings = settings_form()
try:
    config = TrainConfig(**settings)
    length = estimate(settings)
except FerError as exc:
    config, length = None, None
    st.error(str(exc))
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
if st.button("Launch", type="primary", disabled=config is None, key="launch"):
    try:
        st.session_state["run_dir"] = str(launch(config))
        st.success(f"Launched: {st.session_state['run_dir']}")
    except FerError as exc:
        st.error(str(exc))


def show_run(run_dir: str) -> None:
    """Progress, curves and log of one run (polled while it is active)."""
    try:
        info = read_run(run_dir)
    except FerError as exc:
        st.error(str(exc))
        return
    # The run just ended: rerun the whole page, so Past runs and Promote see it too.
    if st.session_state.get("watched_active") == run_dir and not info.active:
        st.session_state["watched_active"] = None
        st.rerun()
    st.session_state["watched_active"] = run_dir if info.active else None
    st.markdown(f"**{info.name}**: {info.model}, status **{info.status}**")
    if info.progress.get("error"):
        st.error(info.progress["error"])
    view = progress_view(info)
    st.progress(view.fraction, text=view.text)
    if info.active and info.status != "stopping":
        if st.button("Stop", help="Stops after the current batch, then measures the best model (kept)"):
            try:
                request_stop(info.path)
                st.info("Stop requested.")
            except FerError as exc:
                st.error(str(exc))
    history = read_history(info.path)
    if history:
        st.plotly_chart(history_curves(history), width="stretch", key=f"curves-{info.name}")
    log = run_log(info)
    if log is not None:
        with st.expander("Log", expanded=info.active):
            st.code(log or "(empty)")
    if info.status in ("failed", "interrupted") and history:
        st.warning("This run did not finish; resume it with `fer-core train --resume " + str(info.path) + "`.")


def runs_table() -> None:
    """Every run, read again on each poll, so statuses move with the current run."""
    runs = list_runs()
    st.dataframe(
        [
            {
                "run": r.name,
                "model": r.model,
                "status": r.status,
                "epoch": f"{r.epoch}/{r.epochs}",
                "selection accuracy": r.best_val_accuracy,
                "selected on": r.progress.get("val_split"),
            }
            for r in runs
        ],
        hide_index=True,
        column_config={
            "selection accuracy": st.column_config.NumberColumn(
                format="%.4f", help="best accuracy on the split that picked the epoch (not a reported result)"
            )
        },
    )


def promote_form(finished: list[str]) -> None:
    """Promote a finished run: a new name by default; an existing name only with a confirmation
    that shows both accuracies (the replaced version is kept and can be restored)."""
    c1, c2 = st.columns([3, 2])
    chosen = c1.selectbox("Run", finished)
    model = read_run(runs_dir() / chosen).model
    name = c2.text_input("Promote as trained/", value=default_promote_name(model), key=f"promote-name-{chosen}").strip()
    existing = trained_dir() / name
    replace = False
    if name and existing.exists():
        st.warning(f"trained/{name} exists: {replacement_summary(existing, runs_dir() / chosen)}.")
        replace = st.checkbox(
            f"Replace trained/{name} (its current version is kept in trained/.versions/{name}/ and can be restored)"
        )
    c1, c2 = st.columns([1, 4])
    if c1.button("Promote", disabled=not name or (existing.exists() and not replace)):
        try:
            with st.spinner("Measuring the stored model on the reported split..."):
                path = promote(runs_dir() / chosen, name, replace=replace)
            st.success(f"Promoted to {path}")
        except FerError as exc:
            st.error(str(exc))
    if c2.button("Show this run"):
        st.session_state["run_dir"] = str(runs_dir() / chosen)
        st.rerun()


def restore_form() -> None:
    """Bring back a kept version of a trained model (the current one is kept in turn)."""
    kept = {name: list_versions(name) for name in list_trained()}
    kept = {name: versions for name, versions in kept.items() if versions}
    if not kept:
        return
    with st.expander("Kept versions of replaced models"):
        c1, c2, c3 = st.columns([2, 2, 1])
        name = c1.selectbox("Model", list(kept))
        version = c2.selectbox("Version", [v.name for v in kept[name]])
        c3.write("")
        if c3.button("Restore"):
            try:
                restore(name, version)
                st.success(f"Restored trained/{name} from {version}; the version it replaced is kept.")
            except FerError as exc:
                st.error(str(exc))


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

st.subheader("Past runs")
if runs:
    st.fragment(run_every=poll)(runs_table)()
    finished = [r.name for r in runs if not r.active and (r.path / "model.keras").is_file()]
    if finished:
        promote_form(finished)
else:
    st.caption(f"No runs in {runs_dir()}.")
restore_form()
