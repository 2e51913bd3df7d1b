"""Faces a click away from Explain: the faces of one confusion-matrix cell (true class x predicted
class), paged (the Evaluate page's gallery), and a face at a moment of a video (the Video page's
timeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

GALLERY_PAGE = 40  # faces per page


def cell_gallery(dataset, evaluation) -> None:
    """The class pickers (keys `true_class`, `predicted_class`: a click on the matrix sets them),
    the cell's faces with file names and the predicted class's probability, and "Open in Explain".
    The evaluation's rows are found in the dataset by file, so a model that left classes out
    (other classes than the data's) shows the faces it did see."""
    classes = list(evaluation.metrics["classes"])
    labels, predictions, probabilities = evaluation.labels, evaluation.predictions, evaluation.probabilities
    if st.session_state.get("true_class") not in classes:
        st.session_state.pop("true_class", None)
    if st.session_state.get("predicted_class") not in classes:
        st.session_state.pop("predicted_class", None)
    c1, c2 = st.columns(2)
    true_class = c1.selectbox("True class", classes, key="true_class")
    predicted_class = c2.selectbox("Predicted class", classes, key="predicted_class")
    row_of = {str(source): row for row, source in enumerate(dataset.sources)}
    split_rows = np.array([row_of[str(source)] for source in evaluation.sources], dtype=int)
    which = np.flatnonzero((labels == classes.index(true_class)) & (predictions == classes.index(predicted_class)))
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
                # Numbered, not named: a file name breaks mid-word under a 72-px face; the picker
                # below names each face's file by the same number.
                f"{k}. {predicted_class} {probabilities[i, classes.index(predicted_class)]:.0%}"
                for k, i in enumerate(shown, start=1)
            ],
        )
        c1, c2 = st.columns([2, 1])
        opened = c1.selectbox(
            "Face", range(len(shown)), format_func=lambda k: f"{k + 1}. {files[k]}", label_visibility="collapsed"
        )
        if c2.button("Open in Explain"):
            st.session_state["explain_index"] = int(split_rows[shown[opened]])
            st.switch_page("app_pages/explain.py")


def open_moment_in_explain(picked, rows, result, name: str) -> None:
    """Under the Video page's timeline: the face at the point clicked, and "Open in Explain" with
    that frame's face as the model saw it (all models side by side, as for a still)."""
    points = picked.selection.points if picked else []
    if not points:
        st.caption("Click a point of the timeline to open that face, at that moment, in Explain.")
        return
    point = points[0]
    face = sorted(rows["face"].unique())[point["curve_number"]]
    row = rows[rows["face"] == face].iloc[point["point_index"]]
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.caption(f"Face {face} at {row['time']:.2f} s (frame {row['frame']}): {row['label']}")
    if c2.button("Open in Explain", key="video_explain"):
        from fer_core.errors import FerError
        from fer_core.inference.video import face_at
        from dashboard.text import said

        from dashboard.explain_faces import OPENED_FROM_VIDEO
        from dashboard.shared import face_detector

        folder = st.session_state.get("video_folder")
        source = next((p for p in Path(folder).iterdir() if p.name != "annotated.mp4"), None) if folder else None
        try:
            detector = face_detector(st.session_state.get("video_detector") or "retinaface")
            crop = face_at(source, int(row["frame"]), tuple(int(row[k]) for k in "xywh"), detector)
        except (FerError, TypeError) as exc:
            st.error(said(exc) if isinstance(exc, FerError) else "The video's file is gone: analyse it again.")
            return
        where = f"{name}, face {face} at {row['time']:.2f} s (frame {row['frame']})"
        st.session_state[OPENED_FROM_VIDEO] = (crop, where, st.session_state.get("video_models", []))
        st.switch_page("app_pages/explain.py")


def confusion_section(dataset, focus: str, chosen) -> None:
    """The focused model's confusion matrix; a click on a cell shows that cell's faces under it."""
    from dashboard.charts import confusion_matrix_figure

    metrics = chosen.metrics
    st.subheader("Confusion matrix")
    normalised = st.radio("Values", ["counts", "row-normalised"], horizontal=True) == "row-normalised"
    # A click (read from the chart's state before it is drawn again) picks the gallery's cell, once:
    # the pickers under the matrix can move on from it. The gallery's cell is outlined.
    points = (st.session_state.get(f"cm-{focus}") or {}).get("selection", {}).get("points", [])
    clicked = (points[0]["y"], points[0]["x"]) if points else None
    if clicked and clicked != st.session_state.get("clicked_cell"):
        st.session_state["true_class"], st.session_state["predicted_class"] = clicked
    st.session_state["clicked_cell"] = clicked
    matrix_classes = list(metrics["classes"])
    chosen_cell = (
        st.session_state.get("true_class") or matrix_classes[0],
        st.session_state.get("predicted_class") or matrix_classes[0],
    )
    figure = confusion_matrix_figure(metrics, normalised, chosen=chosen_cell)
    st.plotly_chart(figure, on_select="rerun", selection_mode="points", key=f"cm-{focus}")

    cell_gallery(dataset, chosen)  # the chosen cell's faces, under the matrix
