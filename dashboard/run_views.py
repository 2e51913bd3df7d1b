"""The Train page's views of runs: the current run live, every run in a table, promotion with its
confirmation, and restoring a kept version. They only read run folders (`fer_core.training.runs`);
the training process is the only writer."""

from __future__ import annotations

import streamlit as st

from fer_core.training.devices import devices_text

from dashboard.charts import history_curves
from fer_core.artifacts import list_trained
from fer_core.errors import FerError
from fer_core.paths import runs_dir, trained_dir
from fer_core.rundir import read_history
from fer_core.training.promote import default_promote_name, list_versions, promote, replacement_summary, restore
from fer_core.training.runs import list_runs, progress_view, read_run, request_stop, run_log


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
    layout = info.config.get("layout")
    st.markdown(
        f"**{info.name}**: {info.model}, status **{info.status}**" + (f"; on {devices_text(layout)}" if layout else "")
    )
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
