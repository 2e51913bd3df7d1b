"""Train: launch `fer-core train` as its own process, watch it live, stop it, promote it.

The page only reads the run directory; the training process is the only writer. A rerun, a
reload or another tab never touches the process.
"""

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fer_core.errors import FerError
from fer_core.models import list_models
from fer_core.runs import (launch, launch_output, launched_process_alive, list_runs, promote, read_run,
                           request_stop)
from fer_core.training import LR_SCHEDULES, PRECISIONS, TrainConfig, read_history, runs_dir
from app_pages.shared import data_path

st.title("Train")
dataset_path = data_path()
paper = TrainConfig()


def settings_form() -> TrainConfig | None:
    """The launch form; returns a config when Launch was pressed."""
    with st.form("launch"):
        c1, c2, c3, c4, c5 = st.columns(5)
        model = c1.selectbox("Model", list_models())
        minutes = c2.number_input("Time budget (minutes, 0 = none)", value=0.0, min_value=0.0, step=5.0,
                                  help="The run ends by itself when the time is spent, keeping its best model; "
                                       "a cosine or linear schedule then decays over the budget")
        epochs = c3.number_input("Epochs", value=paper.epochs, step=1, help="A cap when a time budget is set")
        batch_size = c4.number_input("Batch size", value=paper.batch_size, step=1)
        learning_rate = c5.number_input("Learning rate", value=paper.learning_rate, format="%.5f", step=1e-4)
        c1, c2, c3, c4 = st.columns(4)
        lr_schedule = c1.selectbox("LR schedule", LR_SCHEDULES)
        patience = c2.number_input("Early-stopping patience (0 = off)", value=paper.patience, step=1)
        label_smoothing = c3.number_input("Label smoothing", value=paper.label_smoothing, step=0.05)
        class_weights = c4.selectbox("Class weights", ["none", "balanced"])
        c1, c2, c3, c4, c5 = st.columns(5)
        flip = c1.checkbox("Horizontal flip", value=paper.flip)
        rotation = c2.number_input("Rotation (degrees)", value=paper.rotation_degrees, step=1.0)
        zoom = c3.number_input("Zoom", value=paper.zoom, step=0.05)
        shift = c4.number_input("Shift", value=paper.shift, step=0.05)
        erasing = c5.number_input("Random erasing", value=paper.erasing, step=0.05)
        c1, c2, c3 = st.columns(3)
        limit = c1.number_input("Images per split (0 = all)", value=0, min_value=0, step=100,
                                help="Quick trials on the first N images of each split")
        seed = c2.number_input("Seed", value=paper.seed, step=1)
        precision = c3.selectbox("Precision", PRECISIONS,
                                 help="auto: mixed_bfloat16 on a GPU or a CPU with BF16 instructions, else float32")
        submitted = st.form_submit_button("Launch", type="primary")
    if not submitted:
        return None
    return TrainConfig(
        model=model, data=dataset_path, epochs=int(epochs), minutes=float(minutes) or None, batch_size=int(batch_size), learning_rate=float(learning_rate),
        lr_schedule=lr_schedule, patience=int(patience), label_smoothing=float(label_smoothing),
        class_weights=class_weights, flip=flip, rotation_degrees=float(rotation), zoom=float(zoom), shift=float(shift),
        erasing=float(erasing), limit=int(limit) or None, seed=int(seed), precision=precision,
    )


config = settings_form()
if config is not None:
    try:
        st.session_state["run_dir"] = str(launch(config))
        st.success(f"Launched: {st.session_state['run_dir']}")
    except FerError as exc:
        st.error(str(exc))


def curves(history: list[dict]) -> go.Figure:
    frame = pd.DataFrame(history)
    figure = go.Figure()
    for column, dash in (("loss", None), ("val_loss", "dash"), ("accuracy", None), ("val_accuracy", "dash")):
        if column in frame:
            figure.add_trace(go.Scatter(x=frame["epoch"], y=frame[column], name=column, mode="lines+markers",
                                        line={"dash": dash}, yaxis="y2" if "accuracy" in column else "y"))
    figure.update_layout(height=320, margin={"t": 20}, xaxis_title="epoch", yaxis_title="loss",
                         yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "range": [0, 1]})
    return figure


def show_run(run_dir: str) -> None:
    """Progress, curves and log of one run (polled while it is active)."""
    try:
        info = read_run(run_dir)
    except FerError:
        output = launch_output(run_dir)
        if output.strip():
            st.error(f"The training process ended before its run began: {output.strip().splitlines()[-1]}")
        else:
            st.info(f"Starting {run_dir} (loading the data)...")
        return
    progress = info.progress
    st.markdown(f"**{info.name}**: {info.model}, status **{info.status}**")
    if progress.get("error"):
        st.error(progress["error"])
    epochs, epoch = max(info.epochs, 1), max(info.epoch, 1)
    batches, batch = max(int(progress.get("batches") or 1), 1), int(progress.get("batch") or 0)
    done = min(1.0, ((epoch - 1) + batch / batches) / epochs) if info.status != "finished" else 1.0
    eta = progress.get("eta_seconds")
    label = f"epoch {epoch}/{epochs}, batch {batch}/{batches}"
    if info.config.get("minutes"):  # a budgeted run: time, not epochs, says how far it is
        spent = info.config["minutes"] - float(progress.get("minutes_left", info.config["minutes"]))
        done = min(1.0, spent / info.config["minutes"]) if info.status != "finished" else 1.0
    if info.active and progress.get("minutes_left") is not None:
        label += (f", {progress['minutes_left']:.1f} of {info.config['minutes']:g} budgeted min left "
                  f"({progress.get('images_per_second', 0):.0f} images/s)")
    elif info.active and eta is not None:
        label += f", about {eta / 60:.1f} min left ({progress.get('images_per_second', 0):.0f} images/s)"
    if progress.get("stop_reason") and not info.active:
        label += f" (ended by: {progress['stop_reason'].replace('_', ' ')})"
    st.progress(done, text=label)
    if info.active and st.button("Stop", help="Stops after the current batch; the best model is kept"):
        try:
            request_stop(info.path)
            st.info("Stop requested.")
        except FerError as exc:
            st.error(str(exc))
    history = read_history(info.path)
    if history:
        st.plotly_chart(curves(history), width="stretch", key=f"curves-{info.name}")
    log_file = info.path / "train.log"
    if log_file.is_file():
        with st.expander("Log", expanded=info.active):
            st.code("\n".join(log_file.read_text(errors="replace").splitlines()[-15:]) or "(empty)")
    if info.status in ("failed", "interrupted"):
        st.warning("This run did not finish; resume it with `fer-core train --resume " + str(info.path) + "`.")


# The run to show: the one training now, else the one this session launched or picked, else the
# newest on disk, so a reload or a new tab lands on the same run.
runs = list_runs()  # newest first
running = next((r for r in runs if r.active), None)
current = str(running.path) if running else st.session_state.get("run_dir") or (str(runs[0].path) if runs else None)

st.subheader("Current run")
if current:
    active = running is not None or (not Path(current).exists() and launched_process_alive())
    # Poll the run's files every 2 s while it trains; a finished run renders once.
    st.fragment(run_every=2.0 if active else None)(show_run)(current)
else:
    st.caption("No run yet in this session. Launch one above.")

st.subheader("Past runs")
if runs:
    st.dataframe(
        [{"run": r.name, "model": r.model, "status": r.status, "epoch": f"{r.epoch}/{r.epochs}",
          "selection accuracy": r.best_val_accuracy,
          "selected on": r.progress.get("val_split")} for r in runs],
        hide_index=True, column_config={"selection accuracy": st.column_config.NumberColumn(
            format="%.4f", help="best accuracy on the split that picked the epoch (not a reported result)")},
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
