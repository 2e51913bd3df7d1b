"""The Train page's views of runs: the watched run live (stop, resume), promotion with its
confirmation, and restoring a kept version. They only read run folders (`fer_core.training.runs`);
the training process is the only writer."""

from __future__ import annotations

import streamlit as st

from fer_core.training.devices import devices_text

from dashboard.charts import history_curves
from dashboard.run_list import watch
from fer_core.artifacts import list_trained
from fer_core.errors import FerError
from fer_core.paths import runs_dir, trained_dir
from fer_core.rundir import CHECKPOINT_FILE, read_history
from fer_core.training.launch import launch_resume
from fer_core.training.promote import (
    default_promote_name,
    list_versions,
    measured_on,
    promote,
    replacement_summary,
    restore,
)
from fer_core.training.runs import progress_view, read_run, request_stop, run_log
from dashboard.text import said


def show_run(run_dir: str) -> None:
    """Progress, curves and log of one run (polled while it is active)."""
    try:
        info = read_run(run_dir)
    except FerError as exc:
        st.error(said(exc))
        return
    # The run just ended: rerun the whole page, so the runs table and Promote see it too.
    if st.session_state.get("watched_active") == run_dir and not info.active:
        st.session_state["watched_active"] = None
        st.rerun()
    st.session_state["watched_active"] = run_dir if info.active else None
    layout = info.config.get("layout")
    st.markdown(
        f"**{info.name}**: {info.model}, status **{info.status}**" + (f"; on {devices_text(layout)}" if layout else "")
    )
    if info.progress.get("error"):
        st.error(said(info.progress["error"]))
    view = progress_view(info)
    st.progress(view.fraction, text=view.text)
    if info.active and info.status != "stopping":
        if st.button(
            "Stop",
            help="Ends the run after the current batch; the best model so far is kept, and measured when you "
            "promote it",
        ):
            try:
                request_stop(info.path)
                st.info("Stop requested: the run ends after the current batch.")
            except FerError as exc:
                st.error(said(exc))
    best_epoch = info.progress.get("best_epoch")
    if info.status == "stopped" and not (info.path / "metrics.json").is_file() and best_epoch:
        st.info(
            f"Stopped on request. The best model so far (epoch {best_epoch}, selection accuracy "
            f"{info.best_val_accuracy:.4f}) is kept in the run; it has not been measured on the reported split. "
            "Promoting it measures it."
        )
    history = read_history(info.path)
    if history:
        st.plotly_chart(history_curves(history), width="stretch", key=f"curves-{info.name}")
    log = run_log(info)
    if log is not None:
        with st.expander("Log", expanded=info.active):
            st.code(log or "(empty)")
    resumable = info.status in ("stopped", "failed", "interrupted") and (info.path / CHECKPOINT_FILE).is_file()
    if resumable and info.progress.get("stop_reason") not in ("epochs", "early_stop", "budget"):
        st.caption(f"It goes on from epoch {info.epoch}'s checkpoint (`fer-core train --resume {info.path}`).")
        if st.button("Resume", key=f"resume-{info.name}"):
            try:
                launch_resume(info.path)
                st.rerun()
            except FerError as exc:
                st.error(said(exc))


def promote_form(finished: list[str]) -> None:
    """Promote a finished run: a new name by default; an existing name only with a confirmation
    that shows both accuracies and the sets they were measured on (the replaced version is kept
    and can be restored). Once promoted, the form says so instead of offering it again."""
    done = st.session_state.pop("promoted_message", None)
    if done:
        st.success(done)
    c1, c2 = st.columns([3, 2])
    chosen = c1.selectbox("Run", finished)
    model = read_run(runs_dir() / chosen).model
    name = c2.text_input("Promote as trained/", value=default_promote_name(model), key=f"promote-name-{chosen}").strip()
    existing = trained_dir() / name
    promoted_as = st.session_state.setdefault("promoted_runs", {}).get(chosen)
    replace = False
    if promoted_as == name:
        st.info(f"This run is trained/{name} now ({measured_on(existing)}).")
    elif name and existing.exists():
        st.warning(f"trained/{name} exists: {replacement_summary(existing, runs_dir() / chosen)}.")
        replace = st.checkbox(
            f"Replace trained/{name} (its current version is kept in trained/.versions/{name}/ and can be restored)",
            key=f"replace-{chosen}-{name}",
        )
    c1, c2 = st.columns([1, 4])
    if c1.button("Promote", disabled=not name or promoted_as == name or (existing.exists() and not replace)):
        try:
            with st.spinner("Measuring the stored model on the reported split..."):
                path = promote(runs_dir() / chosen, name, replace=replace)
            st.session_state["promoted_runs"][chosen] = name
            st.session_state["promoted_message"] = f"Promoted to {path}: {measured_on(path)}."
            st.session_state.pop(f"replace-{chosen}-{name}", None)
            st.rerun()
        except FerError as exc:
            st.error(said(exc))
    if c2.button("Watch this run"):
        watch(runs_dir() / chosen)
        st.rerun()


def restore_form() -> None:
    """Bring back a kept version of a trained model (the current one is kept in turn), each
    version shown with its accuracy, after a confirmation."""
    kept = {name: list_versions(name) for name in list_trained()}
    kept = {name: versions for name, versions in kept.items() if versions}
    if not kept:
        return
    # A heading, not an expander: an expander closes when the elements above it change (a message
    # shown once), which each click on its own controls can do.
    st.subheader("Kept versions of replaced models")
    with st.container():
        done = st.session_state.pop("restored_message", None)
        if done:
            st.success(done)
        c1, c2 = st.columns([1, 2])
        name = c1.selectbox("Model", list(kept))
        by_name = {v.name: v for v in kept[name]}
        version = c2.selectbox(
            "Version (kept when it was replaced)",
            list(by_name),
            format_func=lambda v: f"{v}: {measured_on(by_name[v])}",
        )
        confirm = st.checkbox(
            f"Yes, put this version back as trained/{name} (replacing {measured_on(trained_dir() / name)} now; "
            "that one is kept in turn)",
            key=f"restore-{name}-{version}",
        )
        if st.button("Restore", disabled=not confirm):
            try:
                restore(name, version)
                st.session_state["restored_message"] = (
                    f"Restored trained/{name} from {version} ({measured_on(trained_dir() / name)}); "
                    "the version it replaced is kept."
                )
                st.session_state.pop(f"restore-{name}-{version}", None)
                st.rerun()
            except FerError as exc:
                st.error(said(exc))
