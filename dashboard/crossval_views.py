"""The Train page's cross-validation: launch one with the settings above (the folds, the subject
pattern from the Dataset page, the start-from model, the budget), watch it fold by fold, stop it,
resume it; and Evaluate's view of the finished ones (their numbers, pooled confusion matrix,
near-identical images across folds and suspect labels)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.errors import FerError
from dashboard.text import said


def launch_crossval_button(config, folds: int) -> None:
    from dashboard.run_list import watch
    from fer_core.training.launch import launch_crossval

    if st.button(f"Launch a {folds}-fold cross-validation", type="primary", disabled=config is None, key="launch_cv"):
        try:
            watch(launch_crossval(config, folds, config.group_by))
        except FerError as exc:
            st.error(said(exc))


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
        st.error(said(progress.text))
    if progress.status == "running" and st.button("Stop the cross-validation", key="stop_cv"):
        try:
            request_crossval_stop(folder)
            st.info("Stop requested: the running fold ends after its current batch; finished folds are kept.")
        except FerError as exc:
            st.error(said(exc))
    if progress.status in ("stopped", "failed") and st.button("Resume from the finished folds", key="resume_cv"):
        try:
            launch_crossval(None, 0, resume=folder)
            st.rerun()
        except FerError as exc:
            st.error(said(exc))
    if progress.status == "finished":
        st.caption("Its folds, pooled confusion matrix and suspect labels are on Evaluate & compare.")


def crossval_results() -> None:
    """Evaluate's section: a finished cross-validation's folds, summary and pooled matrix."""
    import pandas as pd

    from fer_core.training.crossval_runs import list_crossvals
    from dashboard.charts import confusion_matrix_figure
    from dashboard.label_review import suspects_section
    from dashboard.shared import metrics_table

    crossvals = list_crossvals()
    if not crossvals:
        return
    st.subheader("Cross-validations")
    names = {f"{folder.name}: {d['model']}, {d['folds']} folds": (folder, d) for folder, d in crossvals}
    folder, result = names[st.selectbox("Cross-validation", list(names))]
    accuracy, f1 = result["accuracy"], result["macro_f1"]
    st.write(
        f"**{result['model']}** on {result['data']} ({len(result['classes'])} classes), {result['folds']} folds"
        + (f" over {result['groups']} groups (no group in two folds)" if result.get("groups") else "")
        + f": accuracy **{accuracy['mean']:.4f} ± {accuracy['std']:.4f}**, macro-F1 {f1['mean']:.4f} ± "
        f"{f1['std']:.4f}; pooled accuracy {result['pooled']['accuracy']:.4f} on {result['pooled']['n']:,} images."
    )
    near = result.get("near_identical_across_folds") or {}
    if near.get("count"):
        example = ", ".join(Path(f).name for f in near["examples"][0])
        st.warning(
            f"{near['count']} group(s) of near-identical images sit in different folds (e.g. {example}): a fold "
            "was tested on faces it trained on, so these numbers are inflated. A subject pattern on the Dataset "
            "page keeps each person in one fold."
        )
    folds = pd.DataFrame(result["per_fold"]).drop(columns=["run", "test_groups"], errors="ignore")
    metrics_table(folds, four_decimals=("accuracy", "macro_f1"))
    pooled = {"classes": result["classes"], "confusion_matrix": result["pooled"]["confusion_matrix"]}
    st.plotly_chart(confusion_matrix_figure(pooled), width="stretch", key=f"cv-{folder.name}")
    st.caption(
        f"`fer-core crossval` wrote these to {folder / 'crossval.json'}. A fold's model, picked above, is "
        "measured on its own fold (held_out.txt)."
    )
    suspects_section(folder, result)
