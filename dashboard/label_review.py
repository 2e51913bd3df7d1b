"""The Evaluate page's suspect labels of a cross-validation: the faces the out-of-fold models most
doubt, each with keep / relabel / exclude, and "Save a corrected copy"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from fer_core.errors import FerError
from dashboard.text import said

PAGE = 12  # suspects a page


@st.cache_data(show_spinner=False, max_entries=8)
def _suspects(folder: str, version: float):
    from fer_core.evaluation.label_review import review

    return review(folder)


def _face(data: Path, path: str):
    """The face as the dataset stores it (grayscale), or None where the file cannot be read."""
    from fer_core.data.images import read_grayscale

    base = data.parent if data.is_file() else data
    try:
        return read_grayscale(base / path)
    except (OSError, FerError):
        return None


def suspects_section(folder: Path, result: dict) -> None:
    from fer_core.data.corrections import EXCLUDE, KEEP, write_corrected_copy
    from fer_core.evaluation.label_review import OUT_OF_FOLD_FILE, labelled_images

    st.markdown("**Suspect labels**")
    oof = folder / OUT_OF_FOLD_FILE
    if not oof.is_file():
        st.info(f"No out-of-fold probabilities in {folder.name}: resume it with `fer-core crossval --resume {folder}`.")
        return
    suspects = _suspects(str(folder), oof.stat().st_mtime)
    classes, data = list(result["classes"]), Path(result["data"])
    st.caption(
        f"{len(suspects):,} of {result['pooled']['n']:,} images whose given label the model that never saw them "
        "doubts (confident learning), most doubtful first. Decide for each; the dataset's files are never changed."
    )
    if suspects.empty:
        return
    decisions = st.session_state.setdefault(f"decisions-{folder.name}", {})
    pages = max(1, -(-len(suspects) // PAGE))
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key=f"suspects-{folder.name}")
    shown = suspects.iloc[(page - 1) * PAGE : page * PAGE]
    columns = st.columns(4)
    for k, row in enumerate(shown.itertuples()):
        with columns[k % 4]:
            face = _face(data, row.path)
            if face is not None:
                st.image(np.asarray(face), width=96)
            st.caption(
                f"{row.rank}. given **{row.given}** ({row.quality:.0%}); model: {row.suggested} "
                f"({row.suggested_probability:.0%})"
            )
            options = [KEEP, EXCLUDE, *(f"relabel as {c}" for c in classes if c != row.given)]
            preferred = f"relabel as {row.suggested}"
            current = decisions.get(row.path, KEEP)
            label = current if current in (KEEP, EXCLUDE) else f"relabel as {current}"
            chosen = st.selectbox(
                f"{row.path}",
                options,
                index=options.index(label),
                key=f"decide-{folder.name}-{row.path}",
                label_visibility="collapsed",
                help=f"{row.path}; the model suggests {preferred}",
            )
            decisions[row.path] = chosen.removeprefix("relabel as ") if chosen.startswith("relabel as ") else chosen
    changed = {path: d for path, d in decisions.items() if d != KEEP}
    if st.button(f"Save a corrected copy ({len(changed)} changed)", disabled=not changed, key=f"save-{folder.name}"):
        try:
            written = write_corrected_copy(data, labelled_images(folder), changed, classes)
        except FerError as exc:
            st.error(said(exc))
        else:
            st.success(f"Written {written}: set it as the dataset in the sidebar to train on it.")
