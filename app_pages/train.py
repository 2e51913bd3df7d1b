"""Train: launch `fer-core train` as its own process, watch it live, stop it, promote it.

The page only reads the run directory; the training process is the only writer. A rerun, a
reload or another tab never touches the process.
"""

import streamlit as st

from fer_core.errors import FerError
from fer_core.models import list_models
from fer_core.rundir import read_history, runs_dir
from fer_core.runs import launch, list_runs, progress_view, promote, read_run, request_stop, run_log
from fer_core.train_config import TrainConfig
from dashboard.charts import history_curves
from dashboard.shared import data_path

st.title("Train")
dataset_path = data_path()
paper = TrainConfig()


def settings_form() -> dict | None:
    """The launch form; returns its settings when Launch was pressed (TrainConfig checks them)."""
    with st.form("launch"):
        c1, c2, c3, c4, c5 = st.columns(5)
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
        batch_size = c4.number_input("Batch size", value=paper.batch_size, step=1)
        learning_rate = c5.number_input("Learning rate", value=paper.learning_rate, format="%.5f", step=1e-4)
        c1, c2, c3, c4 = st.columns(4)
        lr_schedule = c1.selectbox("LR schedule", TrainConfig.OPTIONS["lr_schedule"])
        patience = c2.number_input("Early-stopping patience (0 = off)", value=paper.patience, step=1)
        label_smoothing = c3.number_input("Label smoothing", value=paper.label_smoothing, step=0.05)
        class_weights = c4.selectbox("Class weights", TrainConfig.OPTIONS["class_weights"])
        c1, c2, c3, c4, c5 = st.columns(5)
        flip = c1.checkbox("Horizontal flip", value=paper.flip)
        rotation = c2.number_input("Rotation (degrees)", value=paper.rotation_degrees, step=1.0)
        zoom = c3.number_input("Zoom", value=paper.zoom, step=0.05)
        shift = c4.number_input("Shift", value=paper.shift, step=0.05)
        erasing = c5.number_input("Random erasing", value=paper.erasing, step=0.05)
        c1, c2, c3 = st.columns(3)
        limit = c1.number_input(
            "Images per split (0 = all)",
            value=0,
            min_value=0,
            step=100,
            help="Quick trials on the first N images of each split",
        )
        seed = c2.number_input("Seed", value=paper.seed, step=1)
        precision = c3.selectbox(
            "Precision",
            TrainConfig.OPTIONS["precision"],
            help="auto: mixed_bfloat16 on a GPU or a CPU with BF16 instructions, else float32",
        )
        submitted = st.form_submit_button("Launch", type="primary")
    if not submitted:
        return None
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


settings = settings_form()
if settings is not None:
    try:
        st.session_state["run_dir"] = str(launch(TrainConfig(**settings)))
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
    st.markdown(f"**{info.name}**: {info.model}, status **{info.status}**")
    if info.progress.get("error"):
        st.error(info.progress["error"])
    view = progress_view(info)
    st.progress(view.fraction, text=view.text)
    if info.active and st.button("Stop", help="Stops after the current batch; the best model is kept"):
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
    if info.status in ("failed", "interrupted") and read_history(info.path):
        st.warning("This run did not finish; resume it with `fer-core train --resume " + str(info.path) + "`.")


# The run to show: the one training now, else the one this session launched or picked, else the
# newest on disk, so a reload or a new tab lands on the same run.
runs = list_runs()  # newest first
running = next((r for r in runs if r.active), None)
current = str(running.path) if running else st.session_state.get("run_dir") or (str(runs[0].path) if runs else None)

st.subheader("Current run")
if current:
    active = running is not None
    # Poll the run's files every 2 s while it trains; a finished run renders once.
    st.fragment(run_every=2.0 if active else None)(show_run)(current)
else:
    st.caption("No run yet in this session. Launch one above.")

st.subheader("Past runs")
if runs:
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
    finished = [r.name for r in runs if not r.active and (r.path / "model.keras").is_file()]
    if finished:
        c1, c2, c3 = st.columns([3, 2, 1])
        chosen = c1.selectbox("Run", finished)
        name = c2.text_input("Promote as trained/", value=next(r.model for r in runs if r.name == chosen))
        c3.write("")
        if c3.button("Promote"):
            try:
                path = promote(runs_dir() / chosen, name)
                st.success(f"Promoted to {path}")
            except FerError as exc:
                st.error(str(exc))
        if st.button("Show this run"):
            st.session_state["run_dir"] = str(runs_dir() / chosen)
            st.rerun()
else:
    st.caption(f"No runs in {runs_dir()}.")
