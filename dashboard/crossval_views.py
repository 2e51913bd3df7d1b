"""The Train page's cross-validation: launch one with the settings above (the folds, the subject
pattern from the Dataset page, the start-from model, the budget), watch it fold by fold, stop it,
resume it. Its results are on Evaluate."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.errors import FerError
from fer_core.words import sentence


def launch_crossval_button(config, folds: int) -> None:
    from fer_core.training.launch import launch_crossval

    if st.button(f"Launch a {folds}-fold cross-validation", type="primary", disabled=config is None, key="launch_cv"):
        try:
            st.session_state["crossval_dir"] = str(launch_crossval(config, folds, config.group_by))
        except FerError as exc:
            st.error(sentence(exc))


def current_crossval() -> str | None:
    """The cross-validation to show: the one this session launched, else the newest unfinished one."""
    from fer_core.training.crossval_runs import list_unfinished

    chosen = st.session_state.get("crossval_dir")
    if chosen and Path(chosen).is_dir():
        return chosen
    unfinished = list_unfinished()
    return str(unfinished[0]) if unfinished else None


def show_crossval(folder: str) -> None:
    """Fold k of K, the fold's epoch and time left; Stop while it runs, Resume once stopped."""
    from fer_core.training.crossval_runs import crossval_progress, request_crossval_stop
    from fer_core.training.launch import launch_crossval

    progress = crossval_progress(folder)
    if st.session_state.get("watched_cv") == folder and progress.status not in ("running", "stopping"):
        st.session_state["watched_cv"] = None
        st.rerun()  # it just ended: the page shows it as ended, and Evaluate lists it
    st.session_state["watched_cv"] = folder if progress.status in ("running", "stopping") else None
    st.markdown(f"**{Path(folder).name}**: status **{progress.status}**")
    st.progress(progress.fraction, text=progress.text)
    if progress.status == "failed":
        st.error(progress.text)
    if progress.status == "running" and st.button("Stop the cross-validation", key="stop_cv"):
        try:
            request_crossval_stop(folder)
            st.info("Stop requested: the running fold ends after its current batch; finished folds are kept.")
        except FerError as exc:
            st.error(sentence(exc))
    if progress.status in ("stopped", "failed") and st.button("Resume from the finished folds", key="resume_cv"):
        try:
            launch_crossval(None, 0, resume=folder)
            st.rerun()
        except FerError as exc:
            st.error(sentence(exc))
    if progress.status == "finished":
        st.caption("Its folds, pooled confusion matrix and suspect labels are on Evaluate & compare.")
