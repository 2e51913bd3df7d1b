"""The faces of one confusion-matrix cell (true class x predicted class), paged, each a click from
Explain: the Evaluate page's gallery."""

from __future__ import annotations

import numpy as np
import streamlit as st

from fer_core import CLASS_NAMES

GALLERY_PAGE = 40  # faces per page


def cell_gallery(dataset, split: str | None, labels, predictions, probabilities) -> None:
    """The class pickers (keys `true_class`, `predicted_class`: a click on the matrix sets them),
    the cell's faces with file names and the predicted class's probability, and "Open in Explain"."""
    c1, c2 = st.columns(2)
    true_class = c1.selectbox("True class", CLASS_NAMES, key="true_class")
    predicted_class = c2.selectbox("Predicted class", CLASS_NAMES, key="predicted_class")
    split_rows = np.flatnonzero(dataset.splits == split) if split else np.arange(len(dataset))
    which = np.flatnonzero(
        (labels == CLASS_NAMES.index(true_class)) & (predictions == CLASS_NAMES.index(predicted_class))
    )
    pages = max(1, -(-len(which) // GALLERY_PAGE))
    c1, c2 = st.columns([3, 1])
    c1.caption(
        f"{len(which)} faces of true class {true_class} predicted as {predicted_class}"
        + (" (correct predictions)" if true_class == predicted_class else "")
        + f", {GALLERY_PAGE} a page"
    )
    page = c2.number_input(
        f"Page (of {pages})", min_value=1, max_value=pages, value=1, key=f"page-{true_class}-{predicted_class}"
    )
    shown = which[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE]
    if len(shown):
        files = [str(dataset.sources[split_rows[i]]) for i in shown]
        st.image(
            [dataset.images[split_rows[i]] for i in shown],
            width=72,
            caption=[
                # The file name without its split prefix fits under a 72-px face; the picker below has it whole.
                f"{f.rsplit('/', 1)[-1].split('_', 1)[-1]} {probabilities[i, CLASS_NAMES.index(predicted_class)]:.0%}"
                for f, i in zip(files, shown)
            ],
        )
        c1, c2 = st.columns([3, 1])
        opened = c1.selectbox("Face", range(len(shown)), format_func=lambda k: files[k], label_visibility="collapsed")
        if c2.button("Open in Explain"):
            st.session_state["explain_index"] = int(split_rows[shown[opened]])
            st.switch_page("app_pages/explain.py")
