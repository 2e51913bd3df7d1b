"""The Dataset page's "your datasets": bring one as a zip from your computer, rename or delete it,
and the subject pattern with its live preview. Each widget calls one fer_core function."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.errors import FerError
from dashboard.text import said
from dashboard.shared import dataset_key


def use_dataset(path: Path) -> None:
    """Make `path` the sidebar's dataset (the field is a widget: its state is set before it renders)."""
    st.session_state["next_data_path"] = str(path)


def bring_a_dataset() -> None:
    from fer_core.data.store import dataset_folders, delete_dataset, rename_dataset, unpack_dataset
    from fer_core.paths import datasets_dir

    stored = dataset_folders()
    with st.expander("Your datasets: bring one from your computer", expanded=not stored):
        for line in st.session_state.pop("dataset_added", []):  # said after the rerun that switched to it
            (st.success if line.startswith("Added") else st.warning)(line)
        upload = st.file_uploader(
            "A zip of class folders (with or without train/ val/ test/), or of a labelled CSV with its images",
            type=["zip"],
            key="dataset_zip",
        )
        default = Path(upload.name).stem if upload is not None else ""
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        name = c1.text_input("Name", value=default, key=f"dataset_name-{default}")
        if c2.button("Add dataset", disabled=upload is None, key="dataset_add"):
            try:
                with st.spinner("Unpacking and checking..."):
                    unpacked = unpack_dataset(upload.getvalue(), name)
            except FerError as exc:
                st.error(said(exc))
            else:
                st.session_state["dataset_added"] = [
                    f"Added {unpacked.name}: {unpacked.images:,} images, now the dataset in use.",
                    *(
                        f"Skipped {len(files)} {reason}: {', '.join(files[:3])}"
                        for reason, files in unpacked.skipped.items()
                    ),
                ]
                use_dataset(unpacked.data)
                st.rerun()
        if not stored:
            st.caption(f"Datasets you add are kept in {datasets_dir()} (FER_DATASETS_DIR moves it).")
            return
        st.markdown("**Rename or delete**")
        c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        chosen = c1.selectbox("Dataset", stored, key="manage_dataset")
        new_name = c2.text_input("New name", value=chosen, key=f"rename-{chosen}")
        if c3.button("Rename", disabled=new_name == chosen, key="dataset_rename"):
            try:
                use_dataset(rename_dataset(chosen, new_name))
                st.rerun()
            except FerError as exc:
                st.error(said(exc))
        sure = st.checkbox(f"Yes, delete {chosen} and its files", key=f"sure-{chosen}")
        if st.button(f"Delete {chosen}", disabled=not sure, key="dataset_delete"):
            try:
                delete_dataset(chosen)
                st.rerun()
            except FerError as exc:
                st.error(said(exc))


def subject_pattern(dataset) -> None:
    """The subject pattern with its live preview, proposed when the file names share prefixes."""
    from fer_core.data.groups import group_preview, propose_group_pattern

    proposed = propose_group_pattern(dataset) or ""
    patterns = st.session_state.setdefault("subject_patterns", {})
    pattern = st.text_input(
        "Subject pattern (a regular expression; its first group names the person in each file name)",
        value=patterns.get(dataset_key(dataset.root), proposed),  # the one kept in the address, after a reload
        key=f"group_by-{dataset.root}",
        help="Images of one person then never sit on both sides of a split or fold (Train's held-out share, "
        "cross-validation). Proposed when the file names share prefixes.",
    )
    patterns.pop(dataset_key(dataset.root), None)
    if not pattern:
        st.caption("No pattern: each image counts as its own subject.")
        return
    try:
        st.caption(("Proposed: " if pattern == proposed else "") + group_preview(dataset, pattern))
    except FerError as exc:
        st.error(said(exc))
    else:
        patterns[dataset_key(dataset.root)] = pattern  # the Train page trains and folds with it


def chosen_subject_pattern(data_path: str | None) -> str | None:
    """The subject pattern the Dataset page holds for this dataset, if any."""
    if not data_path:
        return None
    return st.session_state.get("subject_patterns", {}).get(dataset_key(data_path))


def zero_shot_section(dataset) -> None:
    """For a dataset that is not FER2013: the trained models of other datasets on its classes they
    know, as they are (zero-shot), measured on request: the baseline a transfer must beat."""
    from fer_core.artifacts import saved_models
    from fer_core.catalog import FER2013, dataset_name, model_dataset
    from fer_core.evaluation.evaluate import zero_shot

    if dataset_name(dataset) == FER2013:
        return
    others = [ref for ref in saved_models() if model_dataset(ref).name != dataset_name(dataset)]
    if not others:
        return
    key = f"zero_shot-{dataset.root}-{len(dataset)}"
    if key not in st.session_state and st.button(
        f"Measure the {len(others)} trained models of other datasets here (zero-shot)",
        help="Each on every image of a class it knows (by name or synonym), as trained elsewhere: the baseline "
        "a model trained or transferred here must beat",
    ):
        try:
            with st.spinner("Measuring..."):
                st.session_state[key] = zero_shot(dataset, others)
        except FerError as exc:
            st.error(said(exc))
    rows = st.session_state.get(key)
    if rows is not None:
        from dashboard.shared import metrics_table

        st.markdown("**Zero-shot: the trained models as they are, on this dataset's classes they know**")
        metrics_table(rows, four_decimals=("accuracy", "macro-F1"))
        if not rows:
            st.caption("None of them knows any of this dataset's classes.")
